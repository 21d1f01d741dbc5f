//! The real `dev-server` binary (what `make dev` runs) as a process on a port and a table of its
//! own, and plain HTTP requests to it: for tests that need the server's own clock and jobs.

use crate::app::{dynamodb_endpoint, fresh_table_name};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;
use tokio::process::{Child, Command};

pub struct DevServer {
    pub base_url: String,
    pub service_key: String,
    _process: Child,
}

/// `target/debug/<name>`, built by `make test` (`cargo build --workspace --bins`).
pub fn debug_binary(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let path = target.join("debug").join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (`cargo build --bins`, as `make test` does)",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

impl DevServer {
    /// Starts the dev server with `env` (e.g. `BILLING_PROMO_SECONDS`) and waits for its health.
    pub async fn start(env: &[(&str, &str)]) -> DevServer {
        let port = free_port();
        let service_key = format!("bk_dev_server_test_{port}_0123456789abcdef");
        let mut command = Command::new(debug_binary("dev-server"));
        command
            .env("DYNAMODB_ENDPOINT", dynamodb_endpoint())
            .env("TABLE_NAME", fresh_table_name())
            .env("BILLING_PORT", port.to_string())
            .env("BILLING_SERVICE_KEY", &service_key)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true);
        for (name, value) in env {
            command.env(name, value);
        }
        let server = DevServer {
            base_url: format!("http://127.0.0.1:{port}"),
            service_key,
            _process: command.spawn().expect("the dev server starts"),
        };
        for _ in 0..300 {
            if let Ok((StatusCode::OK, _)) =
                server.request(Method::GET, "/v1/health", "", None).await
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the dev server did not answer /v1/health within 30 s");
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> Result<(StatusCode, Value), String> {
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base_url))
            .header("content-type", "application/json");
        if !key.is_empty() {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let response = client.request(request).await.map_err(|e| e.to_string())?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok((status, value))
    }

    /// A request that must succeed; its body.
    pub async fn ok(&self, method: Method, path: &str, key: &str, body: Option<Value>) -> Value {
        let (status, value) = self
            .request(method.clone(), path, key, body)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        assert!(status.is_success(), "{method} {path}: {status} {value}");
        value
    }
}
