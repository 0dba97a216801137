//! The fake's REST API over TLS as `discord.com` (certificate in `crates/test-support/tls`),
//! so that a bot can run exactly as in production — serenity's rate limiter on, requests to
//! `https://discord.com/api/v10` — with only name resolution and one trusted CA changed.

use std::sync::Arc;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The CA that signed the fake's `discord.com` certificate (PEM), for the bot's trust store.
pub const CA_PEM: &[u8] = include_bytes!("../../tls/ca.pem");
const CERT_PEM: &[u8] = include_bytes!("../../tls/discord.pem");
const KEY_PEM: &[u8] = include_bytes!("../../tls/discord.key");

/// Serves `app` over TLS on `listener`.
pub(super) fn serve(listener: tokio::net::TcpListener, app: Router) {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(CERT_PEM)
        .collect::<Result<_, _>>()
        .expect("the fake's certificate parses");
    let key = PrivateKeyDer::from_pem_slice(KEY_PEM).expect("the fake's key parses");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("the fake's certificate and key match");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(
                        TokioIo::new(tls),
                        TowerToHyperService::new(app),
                    )
                    .await;
            });
        }
    });
}
