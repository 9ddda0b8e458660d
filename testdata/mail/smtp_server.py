"""A real SMTP server (aiosmtpd) with a chosen STARTTLS set-up, for the
Mail Check probes where `python3 -m aiosmtpd --tlscert/--tlskey` is not
enough. Mail is accepted and dropped.

usage: smtp_server.py PORT MODE [CERT KEY]

MODE
  old-tls           STARTTLS with TLS 1.0 and 1.1 only (needs CERT KEY)
  refuse-starttls   offers STARTTLS, then answers it with 454
  garbage-tls       answers STARTTLS with 220, reads the ClientHello and
                    answers it with bytes that are not TLS
"""
import asyncio
import ssl
import sys
import warnings

from aiosmtpd.handlers import Sink
from aiosmtpd.smtp import SMTP

port, mode = int(sys.argv[1]), sys.argv[2]


class RefuseStarttls(SMTP):
    async def smtp_STARTTLS(self, arg):
        await self.push("454 4.7.0 TLS not available due to temporary reason")


class GarbageTls(SMTP):
    async def smtp_STARTTLS(self, arg):
        await self.push("220 Ready to start TLS")
        # wait for the client's first bytes (its ClientHello), so the
        # garbage cannot arrive together with the 220
        await self._reader.read(1)
        self.transport.write(b"this is not TLS, sorry\r\n" * 4)
        # let the client hang up first (closing with its bytes unread
        # would send a reset that could overtake the garbage)
        while await self._reader.read(4096):
            pass
        self.transport.close()


if mode == "old-tls":
    cls = SMTP
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    # OpenSSL 3 allows TLS 1.0/1.1 (SHA-1 signatures) at security level 0 only
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    ctx.load_cert_chain(sys.argv[3], sys.argv[4])
elif mode in ("refuse-starttls", "garbage-tls"):
    cls = RefuseStarttls if mode == "refuse-starttls" else GarbageTls
    # never used for a handshake; its presence makes EHLO offer STARTTLS
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
else:
    sys.exit(f"unknown mode {mode}")


async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: cls(Sink(), tls_context=ctx, hostname="mx.test"), "127.0.0.1", port
    )
    async with server:
        await server.serve_forever()


asyncio.run(main())
