"""A real HTTPS server for MTA-STS policy tests: serves
<root>/<Host header>/<path> as text/plain over TLS, on 127.0.0.1 and, when
it can, on [::1] (same port).

Some hosts (testdata/mail/fetch.test.zone) get another answer:
  mta-sts.chunked.fetch.test, mta-sts.v6.fetch.test
                              the file with Transfer-Encoding: chunked
  mta-sts.redirect.fetch.test 301 to https://mta-sts.sts.test/...
  mta-sts.html.fetch.test     a policy as text/html
  mta-sts.big.fetch.test      a chunked text/plain body of 70 KiB

usage: https_policy_server.py PORT CERT KEY ROOT
"""
import http.server
import os
import socket
import ssl
import sys
import threading

port, cert, key, root = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
POLICY = b"version: STSv1\r\nmode: enforce\r\nmx: mx.fetch.test\r\nmax_age: 1209600\r\n"


class Handler(http.server.BaseHTTPRequestHandler):
    # HTTP/1.1, so chunked bodies are allowed; every answer closes
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        host = (self.headers.get("Host") or "").split(":")[0].lower()
        if host == "mta-sts.redirect.fetch.test":
            return self.answer(301, b"", [("Location", "https://mta-sts.sts.test" + self.path)])
        if host == "mta-sts.html.fetch.test":
            return self.answer(200, POLICY, [("Content-Type", "text/html")])
        if host == "mta-sts.big.fetch.test":
            return self.chunked([b"max_age: 1209600\r\n" * 64] * 64)
        path = os.path.normpath(os.path.join(root, host, self.path.lstrip("/")))
        if not path.startswith(os.path.abspath(root)) or not os.path.isfile(path):
            return self.answer(404, b"", [])
        body = open(path, "rb").read()
        if host in ("mta-sts.chunked.fetch.test", "mta-sts.v6.fetch.test"):
            # in three chunks, so a reader must put them together
            third = len(body) // 3
            return self.chunked([body[:third], body[third:2 * third], body[2 * third:]])
        self.answer(200, body, [("Content-Type", "text/plain")])

    def answer(self, status, body, headers):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def chunked(self, pieces):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        for p in pieces:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(p), p))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.close_connection = True

    def log_message(self, *args):
        pass


class V6Server(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6


ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
try:
    v6 = V6Server(("::1", port), Handler)
    v6.socket = ctx.wrap_socket(v6.socket, server_side=True)
    threading.Thread(target=v6.serve_forever, daemon=True).start()
except OSError as e:
    print(f"no IPv6 loopback listener: {e}", file=sys.stderr)
server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
server.socket = ctx.wrap_socket(server.socket, server_side=True)
server.serve_forever()
