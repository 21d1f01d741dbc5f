//! The AWS SDK's configuration, shared by every client of the process. Its HTTP client trusts
//! the Mozilla root certificates compiled into the binary (webpki-root-certs), so building a
//! client reads no certificate file: the SDK's default loads and parses the system's
//! certificate store for each client at construction, the largest part of a function's init.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use base64::Engine;
use std::sync::OnceLock;
use tokio::sync::OnceCell;

/// The configuration for AWS itself (`endpoint` `None`: loaded once per process), or for a
/// local stand-in at `endpoint` (DynamoDB Local, moto), which takes any credentials and region.
pub async fn sdk_config(endpoint: Option<&str>) -> SdkConfig {
    static AWS: OnceCell<SdkConfig> = OnceCell::const_new();
    match endpoint {
        None => AWS
            .get_or_init(|| loader().load())
            .await
            .clone(),
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
        .with_pem_certificate(root_certificates_pem());
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

/// The compiled-in root certificates as one PEM bundle, the form the SDK's trust store takes
/// (encoded once per process).
fn root_certificates_pem() -> &'static [u8] {
    static PEM: OnceLock<Vec<u8>> = OnceLock::new();
    PEM.get_or_init(encode_root_certificates)
}

fn encode_root_certificates() -> Vec<u8> {
    let base64 = base64::engine::general_purpose::STANDARD;
    let mut pem = String::new();
    for certificate in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
        pem.push_str("-----BEGIN CERTIFICATE-----\n");
        let encoded = base64.encode(certificate.as_ref());
        for line in encoded.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
    }
    pem.into_bytes()
}
