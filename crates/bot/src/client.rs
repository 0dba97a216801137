//! The Discord REST client: serenity's, with connect and request timeouts, pointed at Discord
//! (production, serenity's rate limiter on) or at a fake for tests.

use std::net::SocketAddr;

use serenity::all::{Http, HttpBuilder};
use tracing::warn;

/// Where REST requests go. Production: all `None` (Discord, serenity's rate limiter on).
#[derive(Debug, Clone, Default)]
pub struct Endpoint {
    /// A fake Discord's base URL. serenity only rewrites URLs through its proxy setting with
    /// the rate limiter off, so this turns it off (most tests).
    pub proxy: Option<String>,
    /// `discord.com` resolves here (a fake's TLS port); requests and the rate limiter stay as
    /// in production (the tests of rate limits).
    pub resolve_to: Option<SocketAddr>,
    /// One more CA to trust (the fake's), with `resolve_to`.
    pub test_ca: Option<Vec<u8>>,
}

/// The REST client, with connect and request timeouts, for `endpoint`.
pub fn http_client(token: &str, endpoint: &Endpoint) -> Http {
    let mut builder = HttpBuilder::new(token);
    // serenity's own client has no timeouts: a connection that hangs would hold a reply (and
    // its channel's queue) for ever. rustls, as serenity's `rustls_backend` configures it.
    let mut client = reqwest::Client::builder()
        .use_rustls_tls()
        .connect_timeout(std::time::Duration::from_secs(10))
        .timeout(std::time::Duration::from_secs(30));
    if let Some(address) = endpoint.resolve_to {
        client = client.resolve("discord.com", address);
    }
    if let Some(pem) = &endpoint.test_ca {
        match reqwest::Certificate::from_pem(pem) {
            Ok(ca) => client = client.add_root_certificate(ca),
            Err(err) => warn!(error = %err, "DISCORD_TEST_CA is not a PEM certificate; ignored"),
        }
    }
    match client.build() {
        Ok(client) => builder = builder.client(client),
        Err(err) => {
            warn!(error = %err, "could not build the Discord HTTP client with timeouts; using serenity's")
        }
    }
    if let Some(url) = &endpoint.proxy {
        builder = builder.proxy(url).ratelimiter_disabled(true);
    }
    builder.build()
}
