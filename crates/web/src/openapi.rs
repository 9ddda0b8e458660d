//! The OpenAPI 3.0 document of `/api/v1/`, generated from [`ROUTES`] so
//! it lists exactly the routes the router serves.

use axum::Json;
use serde_json::{Map, Value, json};

use crate::{Access, Method, ROUTES};

fn param_schema(name: &str) -> Value {
    match name {
        "id" | "limit" => json!({"type": "integer", "format": "int64"}),
        "status" => {
            json!({"type": "string", "enum": ["new", "investigating", "resolved", "false_positive"]})
        }
        "class" => json!({"type": "string", "enum": ["server", "workstation"]}),
        "file" => json!({"type": "string", "enum": parapet_report::files()}),
        "since" => json!({"type": "string", "format": "date"}),
        _ => json!({"type": "string"}),
    }
}

/// The document as a value (also used by tests).
pub fn spec() -> Value {
    let mut paths = Map::new();
    // the demo lies in the quarter it is loaded in: today's
    let demo_quarter = parapet_assurance::quarter::Quarter::containing(
        crate::app::now(),
        parapet_assurance::quarter::QuarterStyle::Financial,
    )
    .to_string();
    for r in ROUTES.iter().filter(|r| r.is_api()) {
        let mut params = Vec::new();
        for seg in r.path.split('/') {
            if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                let mut p = json!({"name": name, "in": "path", "required": true, "schema": param_schema(name)});
                // values that exist in `serve --demo`, so generated requests reach past the 404s
                if let Some(e) = match name {
                    "tenant" => Some("north"),
                    "quarter" => Some(demo_quarter.as_str()),
                    "domain" => Some("northshire.test"),
                    "file" => Some("public-report.html"),
                    _ => None,
                } {
                    p["example"] = json!(e);
                }
                params.push(p);
            }
        }
        for q in r.query {
            params.push(
                json!({"name": q, "in": "query", "required": false, "schema": param_schema(q)}),
            );
        }
        let error = json!({"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
        let mut responses = Map::new();
        let ok_content = if r.path.contains("/reports/") {
            json!({"application/json": {}, "text/html": {}, "application/pdf": {}})
        } else {
            json!({"application/json": {"schema": {"type": "object"}}})
        };
        responses.insert(
            "200".into(),
            json!({"description": "OK", "content": ok_content}),
        );
        if r.access != Access::Public {
            for code in ["400", "401", "403", "404"] {
                responses.insert(code.into(), error.clone());
            }
        }
        let mut op = json!({
            "summary": r.summary,
            "operationId": format!("{}{}", if r.method == Method::Get { "get" } else { "post" }, r.path.replace(['/', '{', '}', '.'], "_")),
            "parameters": params,
            "responses": responses,
        });
        if r.access == Access::Public {
            op["security"] = json!([]);
        }
        if r.method == Method::Post {
            let schema = if r.path.ends_with("/allow") {
                json!({
                    "type": "object",
                    "required": ["note"],
                    "properties": {
                        "name": {"type": "string", "description": "the alert's domain (default) or a name under it"},
                        "days": {"type": "integer", "minimum": 1, "maximum": 365, "default": 30},
                        "note": {"type": "string", "minLength": 1},
                    },
                })
            } else if r.path.ends_with("/incident") {
                json!({
                    "type": "object",
                    "properties": {
                        "outcome": {"type": "string", "enum": ["attempted", "successful"], "default": "attempted"},
                    },
                })
            } else {
                json!({
                    "type": "object",
                    "required": ["status", "note"],
                    "properties": {
                        "status": {"type": "string", "enum": ["investigating", "resolved", "false_positive"]},
                        "note": {"type": "string", "minLength": 1},
                    },
                })
            };
            op["requestBody"] = json!({
                "required": true,
                "content": {"application/json": {"schema": schema}},
            });
            op["responses"]["409"] =
                json!({"description": "the workflow does not allow this change"});
        }
        let entry = paths.entry(r.path.to_string()).or_insert_with(|| json!({}));
        entry[if r.method == Method::Get {
            "get"
        } else {
            "post"
        }] = op;
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Parapet API",
            "version": "1",
            "description": "Protective DNS, alerts, Mail Check and assurance KPIs. A council account sees its own tenant only. Authenticate with `Authorization: Bearer TOKEN` (`parapet users token NAME`); a browser session cookie also works, and then a POST needs the session's CSRF token in `X-CSRF-Token`.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}},
        },
        "paths": paths,
    })
}

pub async fn document() -> Json<Value> {
    Json(spec())
}
