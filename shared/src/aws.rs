//! The AWS SDK's configuration, shared by every client of the process. Its HTTP client trusts
//! the roots of Amazon Trust Services, compiled into the binary (`aws_roots.pem`), so
//! building a client reads no certificate file: the SDK's default loads and parses the system's
//! whole certificate store for each client at construction, which was the largest part of a
//! function's init (docs/BENCHMARKS.md).

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use tokio::sync::OnceCell;

/// The configuration for AWS itself (`endpoint` `None`: loaded once per process), or for a
/// local stand-in at `endpoint` (DynamoDB Local, moto), which takes any credentials and region.
pub async fn sdk_config(endpoint: Option<&str>) -> SdkConfig {
    static AWS: OnceCell<SdkConfig> = OnceCell::const_new();
    match endpoint {
        None => AWS.get_or_init(|| loader().load()).await.clone(),
        Some(endpoint) => {
            loader()
                .endpoint_url(endpoint)
                .region(Region::new("us-east-1"))
                .credentials_provider(Credentials::new("local", "local", None, None, "local"))
                .load()
                .await
        }
    }
}

fn loader() -> aws_config::ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest()).http_client(http_client())
}

/// An HTTPS client for the clients of one configuration (they share its connection pool). Not
/// one per process: a pool's connections belong to the tokio runtime that opened them, and the
/// tests run many runtimes in one process.
fn http_client() -> SharedHttpClient {
    let trust = TrustStore::empty()
        .with_native_roots(false)
        .with_pem_certificate(AWS_ROOTS_PEM);
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(
            TlsContext::builder()
                .with_trust_store(trust)
                .build()
                .expect("a trust store of PEM certificates is a valid TLS context"),
        )
        .build_https()
}

/// The roots of Amazon Trust Services, to which every AWS endpoint's certificate chains (the
/// ones AWS tells clients that pin to trust): narrower than the whole Mozilla set, and 5
/// certificates to parse at start-up instead of ~150.
const AWS_ROOTS_PEM: &[u8] = include_bytes!("aws_roots.pem");

#[cfg(test)]
mod tests {
    use super::{sdk_config, AWS_ROOTS_PEM};
    use base64::Engine;

    #[tokio::test]
    async fn a_client_builds_its_tls_connector_from_the_compiled_in_roots() {
        // Building a client makes the SDK build its connector, parsing the trust store (it
        // panics on a bundle it cannot read).
        let config = sdk_config(Some("http://127.0.0.1:9")).await;
        let _ = aws_sdk_dynamodb::Client::new(&config);
    }

    #[test]
    fn the_aws_roots_are_five_of_the_mozilla_roots() {
        let pem = std::str::from_utf8(AWS_ROOTS_PEM).unwrap();
        let certificates: Vec<Vec<u8>> = pem
            .split("-----BEGIN CERTIFICATE-----")
            .skip(1)
            .map(|block| {
                let body: String = block
                    .split("-----END CERTIFICATE-----")
                    .next()
                    .unwrap()
                    .split_whitespace()
                    .collect();
                base64::engine::general_purpose::STANDARD
                    .decode(body)
                    .unwrap()
            })
            .collect();
        assert_eq!(certificates.len(), 5);
        for der in &certificates {
            assert!(
                webpki_root_certs::TLS_SERVER_ROOT_CERTS
                    .iter()
                    .any(|root| root.as_ref() == der.as_slice()),
                "an AWS root is not in the Mozilla set"
            );
        }
    }
}
