//! `CHROMA_*`: where Chroma is and how to talk to it. The token never reaches `Debug`.

use secrecy::SecretString;

/// How to reach Chroma.
#[derive(Clone, clap::Args)]
pub struct StoreConfig {
    /// Chroma server URL.
    #[arg(
        long = "chroma-url",
        env = "CHROMA_URL",
        default_value = "http://localhost:8000"
    )]
    pub chroma_url: String,
    /// Collection holding the messages (created with cosine distance if missing).
    #[arg(
        long = "chroma-collection",
        env = "CHROMA_COLLECTION",
        default_value = "rtfm_messages"
    )]
    pub chroma_collection: String,
    /// Bearer token for a Chroma server with token auth.
    #[arg(long = "chroma-auth-token", env = "CHROMA_AUTH_TOKEN", hide_env_values = true, value_parser = rtfm_core::config::parse_secret)]
    pub chroma_auth_token: Option<SecretString>,
    /// Database in the tenant (created if missing).
    #[arg(
        long = "chroma-database",
        env = "CHROMA_DATABASE",
        default_value = "default_database"
    )]
    pub chroma_database: String,
    /// Tenant (default: the token's, or Chroma's `default_tenant` without a token). It must
    /// exist: creating tenants is the Chroma operator's call.
    #[arg(long = "chroma-tenant", env = "CHROMA_TENANT")]
    pub chroma_tenant: Option<String>,
    /// Upper bound for one Chroma request.
    #[arg(
        long = "chroma-timeout-secs",
        env = "CHROMA_TIMEOUT_SECS",
        default_value_t = 30
    )]
    pub chroma_timeout_secs: u64,
}

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreConfig")
            .field("chroma_url", &self.chroma_url)
            .field("chroma_collection", &self.chroma_collection)
            .field(
                "chroma_auth_token",
                &self.chroma_auth_token.as_ref().map(|_| "[redacted]"),
            )
            .field("chroma_database", &self.chroma_database)
            .field("chroma_tenant", &self.chroma_tenant)
            .finish()
    }
}

impl StoreConfig {
    pub fn new(url: &str, collection: &str) -> Self {
        Self {
            chroma_url: url.to_string(),
            chroma_collection: collection.to_string(),
            chroma_auth_token: None,
            chroma_database: "default_database".to_string(),
            chroma_tenant: None,
            chroma_timeout_secs: 30,
        }
    }
}
