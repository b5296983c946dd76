//! Asterisk versions and the ARI features that depend on them.
//!
//! New ARI capabilities arrive in minor releases without an ARI version bump, so a
//! program asks the Asterisk version (`GET /asterisk/info`, `system.version`) and checks
//! it with [`AsteriskVersion::supports`] before using one.

use std::fmt;
use std::str::FromStr;

/// An Asterisk release number such as `22.10.1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AsteriskVersion {
    /// Major (branch) number, e.g. 22.
    pub major: u32,
    /// Minor number, e.g. 10.
    pub minor: u32,
    /// Patch number, e.g. 1.
    pub patch: u32,
}

/// An ARI capability that only some Asterisk releases have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Feature {
    /// REST requests sent over the events WebSocket (`RESTRequest`/`RESTResponse`).
    RestOverWebSocket,
    /// Asterisk connects out to the application (ari.conf `type=outbound_websocket`).
    OutboundWebSocket,
    /// `externalMedia` with `transport=websocket` (chan_websocket).
    WebSocketMedia,
    /// chan_websocket control messages as JSON.
    WebSocketMediaJsonControl,
    /// `CallBroadcast` / `CallClaimed` events.
    CallBroadcast,
}

impl Feature {
    /// First release of the 22 branch that has the feature; every later branch has it.
    pub const fn since(self) -> AsteriskVersion {
        let minor = match self {
            Feature::RestOverWebSocket => 4,
            Feature::OutboundWebSocket => 5,
            Feature::WebSocketMedia => 6,
            Feature::WebSocketMediaJsonControl => 8,
            Feature::CallBroadcast => 10,
        };
        AsteriskVersion {
            major: 22,
            minor,
            patch: 0,
        }
    }
}

impl AsteriskVersion {
    /// Whether this release has `feature`.
    ///
    /// Releases of branches before 22 are reported without it, even where a later
    /// backport added it: ask for the feature only where it is known to exist.
    pub fn supports(self, feature: Feature) -> bool {
        let since = feature.since();
        self.major > since.major || (self.major == since.major && self >= since)
    }
}

/// Why a version string could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseVersionError(String);

impl fmt::Display for ParseVersionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "not an Asterisk version (expected MAJOR.MINOR[.PATCH]): {:?}",
            self.0
        )
    }
}

impl std::error::Error for ParseVersionError {}

impl FromStr for AsteriskVersion {
    type Err = ParseVersionError;

    /// Reads `22.10.1`, and also what packagers report, such as
    /// `22.10.1+dfsg+~cs6.17.60671434-1` or `1:22.10.1-1` (Debian epoch) or `22.5.0-rc1`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseVersionError(s.to_owned());
        let without_epoch = s.split_once(':').map_or(s, |(_, rest)| rest);
        let core = without_epoch
            .split(|c: char| !(c.is_ascii_digit() || c == '.'))
            .next()
            .ok_or_else(err)?;
        let mut parts = core
            .split('.')
            .filter(|p| !p.is_empty())
            .map(|p| p.parse::<u32>().map_err(|_| err()));
        let major = parts.next().ok_or_else(err)??;
        let minor = parts.next().ok_or_else(err)??;
        let patch = parts.next().transpose()?.unwrap_or(0);
        Ok(AsteriskVersion {
            major,
            minor,
            patch,
        })
    }
}

impl fmt::Display for AsteriskVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> AsteriskVersion {
        s.parse().unwrap()
    }

    #[test]
    fn parses_release_and_package_versions() {
        assert_eq!(
            v("22.10.1"),
            AsteriskVersion {
                major: 22,
                minor: 10,
                patch: 1
            }
        );
        assert_eq!(v("22.10.1+dfsg+~cs6.17.60671434-1"), v("22.10.1"));
        assert_eq!(v("1:22.10.1+dfsg-1"), v("22.10.1"));
        assert_eq!(v("22.5.0-rc1"), v("22.5.0"));
        assert_eq!(
            v("20.1"),
            AsteriskVersion {
                major: 20,
                minor: 1,
                patch: 0
            }
        );
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "abc", "22", "22.x", "GIT-master-abc"] {
            assert!(bad.parse::<AsteriskVersion>().is_err(), "{bad}");
        }
    }

    #[test]
    fn feature_gates() {
        assert!(v("22.10.1").supports(Feature::CallBroadcast));
        assert!(!v("22.9.0").supports(Feature::CallBroadcast));
        assert!(v("22.4.0").supports(Feature::RestOverWebSocket));
        assert!(!v("22.3.9").supports(Feature::RestOverWebSocket));
        assert!(v("23.0.0").supports(Feature::CallBroadcast));
        assert!(!v("21.12.3").supports(Feature::WebSocketMedia));
    }
}
