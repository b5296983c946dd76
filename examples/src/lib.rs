//! Shared set-up of the examples: where ARI is, from the environment.
//!
//! Every example reads `ARI_URL`, `ARI_USERNAME` and `ARI_PASSWORD`, defaulting to the
//! lab of `asterisk_conf/` (`http://127.0.0.1:8088`, `asterisk`/`asterisk`).

use ari_client::Credentials;

/// ARI base URL from `ARI_URL`, or the lab's.
pub fn ari_url() -> String {
    std::env::var("ARI_URL").unwrap_or_else(|_| "http://127.0.0.1:8088".to_owned())
}

/// ARI credentials from `ARI_USERNAME` and `ARI_PASSWORD`, or the lab's.
pub fn credentials() -> Credentials {
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| "asterisk".to_owned());
    Credentials::new(var("ARI_USERNAME"), var("ARI_PASSWORD"))
}
