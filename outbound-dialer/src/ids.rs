//! The ids a campaign gives Asterisk's objects: deterministic (campaign, number, attempt),
//! so a retried originate after a crash gets 409 instead of making a second call, and
//! prefix-free (fixed width), since Asterisk also answers 409 when a new channel id is a
//! prefix of a live one.

/// The ids of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptIds {
    /// The callee's channel.
    pub callee: String,
    /// The target's channel.
    pub target: String,
    /// The bridge.
    pub bridge: String,
    /// The recording (also the downloaded file's stem).
    pub recording: String,
}

/// A short, stable key of the campaign's name (FNV-1a, 32 bits), so that campaigns
/// sharing an Asterisk never collide.
pub fn campaign_key(campaign: &str) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in campaign.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    format!("{hash:08x}")
}

impl AttemptIds {
    /// The ids of attempt `attempt` at the number stored as `number_id`.
    pub fn new(campaign_key: &str, number_id: i64, attempt: u32) -> Self {
        let tail = format!("{campaign_key}-{number_id:012}-{attempt:03}");
        AttemptIds {
            callee: format!("dc-{tail}"),
            target: format!("dt-{tail}"),
            bridge: format!("db-{tail}"),
            recording: format!("dialer-{tail}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_prefix_free() {
        let key = campaign_key("spring");
        assert_eq!(key, campaign_key("spring"));
        assert_ne!(key, campaign_key("summer"));
        let ids: Vec<String> = (1..=12)
            .flat_map(|n| (1..=3).map(move |a| (n, a)))
            .flat_map(|(n, a)| {
                let ids = AttemptIds::new(&key, n, a);
                [ids.callee, ids.target]
            })
            .collect();
        for (i, a) in ids.iter().enumerate() {
            for (j, b) in ids.iter().enumerate() {
                assert!(i == j || !b.starts_with(a.as_str()), "{a} prefixes {b}");
            }
        }
        assert_eq!(AttemptIds::new(&key, 7, 1), AttemptIds::new(&key, 7, 1));
    }
}
