//! Verdicts about a file from feeds and analysts, and the rule that decides which one answers.
//!
//! The rule (ARCHITECTURE.md states it as an invariant):
//! 1. only verdicts that speak now count: not revoked, `valid_from` passed (when given), and
//!    `valid_until` not yet reached (when given);
//! 2. the caller's own tenant's indicators come first, the newest of them winning; another
//!    tenant's indicators never count;
//! 3. then feeds, the highest trust rank winning, and among equal ranks the newest: the
//!    operator's feeds, and the caller's own tenant's feeds (another tenant's never count);
//! 4. ties left after that go to the source named first in byte order, so the answer never
//!    depends on the order verdicts were stored in;
//! 5. when no one speaks, `Unknown` with no value.

use crate::record::DeterminationType;
use crate::time::Timestamp;

/// Who said something about a file.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum VerdictSource {
    /// An analyst's indicator in one tenant (the MDE indicator API).
    Indicator { tenant: String, id: String },
    /// A threat-intelligence feed of the operator's, by its configured name: it speaks to every
    /// tenant.
    Feed { name: String },
    /// A feed of one tenant's own (`"tenant"` in `--feed-sources`): it speaks only to that
    /// tenant, like its indicators, ranked among the operator's feeds by its rank.
    TenantFeed { tenant: String, name: String },
}

impl VerdictSource {
    /// A key that names the source uniquely, for storage and tie-breaking.
    pub fn key(&self) -> String {
        match self {
            Self::Indicator { tenant, id } => format!("indicator/{tenant}/{id}"),
            Self::Feed { name } => format!("feed/{name}"),
            Self::TenantFeed { tenant, name } => format!("tenant-feed/{tenant}/{name}"),
        }
    }

    /// Whether it speaks to a caller of `tenant`: an indicator or a tenant's own feed only to
    /// its tenant, an operator's feed to everyone.
    pub fn speaks_to(&self, tenant: &str) -> bool {
        match self {
            Self::Indicator { tenant: own, .. } | Self::TenantFeed { tenant: own, .. } => own == tenant,
            Self::Feed { .. } => true,
        }
    }

    /// Whether it is a feed (the operator's or a tenant's), which competes by rank.
    pub fn is_feed(&self) -> bool {
        matches!(self, Self::Feed { .. } | Self::TenantFeed { .. })
    }
}

/// What one source said about one file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Verdict {
    pub source: VerdictSource,
    pub determination_type: DeterminationType,
    pub determination_value: Option<String>,
    /// The source's trust rank (higher is trusted more); indicators do not use it.
    pub rank: i32,
    /// When the source said it (a feed record's modification time, an indicator's creation);
    /// `None` for sources that do not say (a plain CSV), which count as older than any that do.
    pub said_at: Option<Timestamp>,
    pub valid_from: Option<Timestamp>,
    pub valid_until: Option<Timestamp>,
    /// Withdrawn by its source: kept so that an older copy cannot bring it back, never speaks.
    pub revoked: bool,
    /// Where in the source it came from (file and line, STIX id, MISP attribute uuid, ...).
    pub reference: Option<String>,
}

impl Verdict {
    /// Whether it speaks at `now`.
    pub fn speaks_at(&self, now: Timestamp) -> bool {
        !self.revoked
            && self.valid_from.is_none_or(|from| from <= now)
            && self.valid_until.is_none_or(|until| now < until)
    }

    /// Whether `self` should replace `stored`, a verdict of the same source about the same file:
    /// a newer (or equally new) statement replaces an older one, so importing the same feed again
    /// changes nothing and importing an older copy cannot undo a newer one.
    pub fn supersedes(&self, stored: &Verdict) -> bool {
        self.said_at >= stored.said_at
    }
}

/// The answer for one caller, and which verdict gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The index of the winning verdict among those decided over.
    pub winner: Option<usize>,
    pub determination_type: DeterminationType,
    pub determination_value: Option<String>,
}

/// Decides among `verdicts` for a caller of `tenant` at `now` (see the module's rule).
pub fn decide(verdicts: &[Verdict], tenant: &str, now: Timestamp) -> Decision {
    let live = || verdicts.iter().enumerate().filter(|(_, verdict)| verdict.speaks_at(now));
    let tie_break = |verdict: &Verdict| std::cmp::Reverse(verdict.source.key());
    let own = live()
        .filter(|(_, verdict)| matches!(&verdict.source, VerdictSource::Indicator { tenant: own, .. } if own == tenant))
        .max_by_key(|(_, verdict)| (verdict.said_at, tie_break(verdict)));
    let winner = own.or_else(|| {
        live()
            .filter(|(_, verdict)| verdict.source.is_feed() && verdict.source.speaks_to(tenant))
            .max_by_key(|(_, verdict)| (verdict.rank, verdict.said_at, tie_break(verdict)))
    });
    match winner {
        Some((index, verdict)) => Decision {
            winner: Some(index),
            determination_type: verdict.determination_type,
            determination_value: verdict.determination_value.clone(),
        },
        None => Decision { winner: None, determination_type: DeterminationType::Unknown, determination_value: None },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(name: &str, rank: i32, said_at: i64, kind: DeterminationType, value: &str) -> Verdict {
        Verdict {
            source: VerdictSource::Feed { name: name.into() },
            determination_type: kind,
            determination_value: Some(value.into()),
            rank,
            said_at: Some(Timestamp::from_unix_seconds(said_at)),
            valid_from: None,
            valid_until: None,
            revoked: false,
            reference: None,
        }
    }

    fn indicator(tenant: &str, id: &str, said_at: i64, kind: DeterminationType) -> Verdict {
        Verdict {
            source: VerdictSource::Indicator { tenant: tenant.into(), id: id.into() },
            rank: 0,
            ..feed("", 0, said_at, kind, id)
        }
    }

    const NOW: i64 = 1_800_000_000;

    fn decided(verdicts: &[Verdict], tenant: &str) -> (Option<usize>, DeterminationType) {
        let decision = decide(verdicts, tenant, Timestamp::from_unix_seconds(NOW));
        (decision.winner, decision.determination_type)
    }

    #[test]
    fn nobody_speaking_is_unknown_with_no_value() {
        let decision = decide(&[], "contoso", Timestamp::from_unix_seconds(NOW));
        assert_eq!(
            decision,
            Decision { winner: None, determination_type: DeterminationType::Unknown, determination_value: None }
        );
    }

    #[test]
    fn the_callers_own_indicators_come_first_then_feeds_by_rank_then_the_newest() {
        use DeterminationType::*;
        let verdicts = [
            feed("bazaar", 50, 100, Malware, "Emotet"),
            feed("vendor", 80, 50, Pua, "PUA:Win32/Bundler"),
            feed("vendor-old", 80, 40, Unwanted, "old"),
            indicator("contoso", "1", 10, Clean),
            indicator("contoso", "2", 20, Malware),
            indicator("fabrikam", "9", 30, Clean),
        ];
        assert_eq!(decided(&verdicts, "contoso"), (Some(4), Malware), "the newest own indicator");
        assert_eq!(decided(&verdicts, "fabrikam"), (Some(5), Clean));
        assert_eq!(
            decided(&verdicts, "northwind"),
            (Some(1), Pua),
            "no indicator of its own: the highest rank, newest"
        );
        assert_eq!(decided(&verdicts[..1], "contoso"), (Some(0), Malware));
        // The order verdicts come in does not matter.
        let mut reversed = verdicts.to_vec();
        reversed.reverse();
        assert_eq!(decided(&reversed, "northwind"), (Some(4), Pua));
    }

    #[test]
    fn a_tenants_own_feed_competes_by_rank_for_that_tenant_alone() {
        let own = |tenant: &str, rank: i32| Verdict {
            source: VerdictSource::TenantFeed { tenant: tenant.into(), name: "intel".into() },
            ..feed("", rank, 10, DeterminationType::Clean, "theirs")
        };
        let verdicts =
            [feed("bazaar", 40, 5, DeterminationType::Malware, "Emotet"), own("contoso", 70), own("fabrikam", 90)];
        assert_eq!(decided(&verdicts, "contoso"), (Some(1), DeterminationType::Clean), "above the operator's feed");
        assert_eq!(decided(&verdicts, "northwind"), (Some(0), DeterminationType::Malware), "no one else's");
        assert_eq!(decided(&verdicts, "fabrikam"), (Some(2), DeterminationType::Clean));
        let below = [feed("bazaar", 40, 5, DeterminationType::Malware, "Emotet"), own("contoso", 10)];
        assert_eq!(decided(&below, "contoso"), (Some(0), DeterminationType::Malware), "ranked below it");
    }

    #[test]
    fn expired_revoked_and_future_verdicts_do_not_speak() {
        use DeterminationType::*;
        let mut expired = indicator("contoso", "1", 10, Clean);
        expired.valid_until = Some(Timestamp::from_unix_seconds(NOW));
        let mut revoked = feed("vendor", 90, 10, Malware, "Zeus");
        revoked.revoked = true;
        let mut future = feed("vendor2", 95, 10, Malware, "Later");
        future.valid_from = Some(Timestamp::from_unix_seconds(NOW + 1));
        let speaking = feed("bazaar", 10, 10, Pua, "Adware");
        let verdicts = [expired.clone(), revoked, future, speaking];
        assert_eq!(decided(&verdicts, "contoso"), (Some(3), Pua));
        expired.valid_until = Some(Timestamp::from_unix_seconds(NOW + 1));
        assert_eq!(decided(&[expired], "contoso"), (Some(0), Clean), "valid until a moment after now");
    }

    #[test]
    fn newer_statements_supersede_older_ones_and_equal_ones_change_nothing() {
        use DeterminationType::*;
        let old = feed("vendor", 1, 10, Malware, "A");
        let new = feed("vendor", 1, 20, Clean, "B");
        assert!(new.supersedes(&old));
        assert!(!old.supersedes(&new));
        assert!(old.supersedes(&old.clone()));
    }
}
