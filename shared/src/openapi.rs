//! The OpenAPI 3.1 document, generated from the route table and the request and response types,
//! so it cannot drift from what the handlers accept and return.

use crate::routes::{Access, SPECS};
use schemars::generate::SchemaSettings;
use serde_json::{json, Map, Value};
use std::sync::OnceLock;

/// Built once per process, on first request.
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(build)
}

fn build() -> Value {
    let mut generator = SchemaSettings::draft2020_12()
        .with(|s| {
            s.definitions_path = "/components/schemas".into();
            s.meta_schema = None;
        })
        .into_generator();
    let mut paths = Map::new();
    for route in SPECS {
        let mut parameters: Vec<Value> = path_params(route.path)
            .map(|name| {
                json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}})
            })
            .collect();
        parameters.extend(route.query.iter().map(|(name, description)| {
            json!({"name": name, "in": "query", "required": false, "description": description, "schema": {"type": "string"}})
        }));
        let mut operation = json!({
            "operationId": route.name,
            "summary": route.summary,
            "parameters": parameters,
            "responses": {
                route.status.to_string(): {
                    "description": "Success.",
                    "content": {"application/json": {"schema": (route.response)(&mut generator)}},
                },
                "default": {
                    "description": "An error in the contract's format.",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                },
            },
        });
        if let Some(request) = route.request {
            operation["requestBody"] = json!({
                "required": true,
                "content": {"application/json": {"schema": request(&mut generator)}},
            });
        }
        if route.access == Access::Public {
            operation["security"] = json!([]);
        }
        if route.method == http::Method::POST && route.access != Access::Public {
            operation["parameters"]
                .as_array_mut()
                .expect("parameters is an array")
                .push(json!({
                    "name": "Idempotency-Key", "in": "header", "required": false,
                    "description": "1–255 characters. The first response is replayed for 48 h for a retry with the same body; another body answers 400 `idempotency_key_reused`, a retry while the first runs 409 `idempotency_key_in_use`.",
                    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                }));
        }
        let entry = paths
            .entry(route.path.to_owned())
            .or_insert_with(|| json!({}));
        entry[route.method.as_str().to_lowercase()] = operation;
    }
    let mut schemas = generator.take_definitions(true);
    schemas.insert("Error".into(), error_schema());
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Billing API",
            "version": "1.0.0",
            "description": "Prepaid credits, agent runs, plans and payments for AI-agent platforms. Money is integer US cents; every list is paginated newest first with opaque cursors; every POST accepts an Idempotency-Key. Choices the contract leaves open are written in the operation summaries.",
        },
        "servers": [{"url": "http://127.0.0.1:3000", "description": "make dev"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "A `bk_…` API key, or the service key."}},
        },
    })
}

fn path_params(template: &str) -> impl Iterator<Item = &str> {
    template
        .split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
}

fn error_schema() -> Value {
    json!({
        "type": "object",
        "required": ["error"],
        "properties": {"error": {
            "type": "object",
            "required": ["code", "message", "request_id"],
            "properties": {
                "code": {"type": "string", "description": "invalid_request, invalid_cursor, idempotency_key_reused (400); unauthorized (401); insufficient_credits, hard_cap_reached, payment_required, requires_action, plan_inactive (402); forbidden, plan_readonly, plan_suspended (403); not_found, no_subscription (404); conflict, idempotency_key_in_use, default_account_unlink, subscription_canceled (409); rate_limited (429, with Retry-After); internal (500); portal_error, payment_provider_error (502); unavailable (503, health only)."},
                "message": {"type": "string"},
                "request_id": {"type": "string"},
            },
        }},
    })
}
