//! The budgets `--rate-limit` and `--rate-limit-exempt` configure, each name checked against the
//! APIs and the callers the server knows.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Context;

use crate::RateLimits;
use crate::limits::{Clock, Limiter, Window};

/// How the application limits its callers, as the command line says.
#[derive(Clone, Default)]
pub struct RateLimitConfig {
    /// `NAME=PER_MINUTE/PER_HOUR`, where NAME is an API, a known tenant or an application.
    pub budgets: Vec<String>,
    /// Applications (client ids) that are never limited.
    pub exempt: Vec<String>,
    /// No limits at all.
    pub off: bool,
    /// A Redis the budgets are shared through (between replicas); `None` counts in this process.
    pub redis: Option<String>,
    /// The limiter's time, for tests that move it; `None`: the system's (Redis's own in Redis).
    pub clock: Option<Clock>,
}

/// Who `--rate-limit` and `--rate-limit-exempt` may name besides an API: the tenants and
/// applications this server knows, so that a mistyped name is refused rather than becoming a
/// budget nobody spends.
#[derive(Debug, Default)]
pub(crate) struct KnownCallers {
    pub(crate) tenants: BTreeSet<String>,
    pub(crate) applications: BTreeSet<String>,
    /// Applications of trusted external issuers cannot be listed: any client id (a GUID) may be one.
    pub(crate) external_issuers: bool,
}

impl KnownCallers {
    fn is_application(&self, name: &str) -> bool {
        self.applications.contains(name) || (self.external_issuers && uuid::Uuid::try_parse(name).is_ok())
    }

    /// What `option` could have named instead of `name`.
    fn refuse(&self, option: &str, name: &str, apis: bool) -> anyhow::Error {
        let list = |names: &mut dyn Iterator<Item = &str>| {
            let names: Vec<&str> = names.collect();
            if names.is_empty() { "none".to_owned() } else { names.join(", ") }
        };
        let mut message = format!("{option} {name}: no such ");
        if apis {
            message += &format!(
                "API, tenant or application.\nAPIs: {}\ntenants: {}\n",
                RateLimits::API_NAMES.join(", "),
                list(&mut self.tenants.iter().map(String::as_str))
            );
        } else {
            message += "application.\n";
        }
        message += &format!("applications (client ids): {}", list(&mut self.applications.iter().map(String::as_str)));
        if self.external_issuers {
            message += " (and any GUID, for applications of the trusted issuers)";
        }
        anyhow::anyhow!(message)
    }
}

/// The budgets the configuration names, each name checked against the APIs and `known`.
fn configured_limits(
    specs: &[String],
    exempt: &[String],
    enabled: bool,
    known: &KnownCallers,
) -> anyhow::Result<RateLimits> {
    let mut limits = RateLimits { enabled, ..RateLimits::default() };
    for client_id in exempt {
        if !known.is_application(client_id) {
            return Err(known.refuse("--rate-limit-exempt", client_id, false));
        }
        limits.exempt.insert(client_id.clone());
    }
    for spec in specs {
        let parse = || -> Option<(String, Vec<Window>)> {
            let (name, budget) = spec.split_once('=')?;
            let (minute, hour) = budget.split_once('/')?;
            // A budget of 0 would refuse everything: say so rather than accept it.
            let window = |seconds, limit: &str| {
                let limit: u64 = limit.trim().parse().ok().filter(|&limit| limit > 0)?;
                Some(Window { duration: Duration::from_secs(seconds), limit })
            };
            Some((name.trim().to_owned(), vec![window(60, minute)?, window(3600, hour)?]))
        };
        let (name, windows) =
            parse().with_context(|| format!("--rate-limit {spec}: expected NAME=PER_MINUTE/PER_HOUR"))?;
        if RateLimits::API_NAMES.contains(&name.as_str()) {
            limits.per_api.insert(name, windows);
        } else if known.tenants.contains(&name) || known.is_application(&name) {
            limits.per_caller.insert(name, windows);
        } else {
            return Err(known.refuse("--rate-limit", &name, true));
        }
    }
    Ok(limits)
}

/// The budgets and the limiter that counts them.
pub(crate) fn rate_limits(config: &RateLimitConfig, known: &KnownCallers) -> anyhow::Result<(RateLimits, Limiter)> {
    let limits = configured_limits(&config.budgets, &config.exempt, !config.off, known)?;
    let limiter = match &config.redis {
        Some(url) => Limiter::with_redis(url).map_err(anyhow::Error::msg).context("--rate-limit-redis")?,
        None => Limiter::local(),
    };
    let limiter = match &config.clock {
        Some(clock) => limiter.with_clock(clock.clone()),
        None => limiter,
    };
    tracing::info!(backend = limiter.backend(), enabled = limits.enabled, "rate limits");
    Ok((limits, limiter))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> KnownCallers {
        KnownCallers {
            tenants: ["contoso".to_owned()].into(),
            applications: ["11111111-2222-3333-4444-555555555555".to_owned()].into(),
            external_issuers: false,
        }
    }

    fn specs(specs: &[&str]) -> Vec<String> {
        specs.iter().map(|spec| spec.to_string()).collect()
    }

    #[test]
    fn every_api_the_throttle_knows_can_be_given_its_own_budget() {
        for api in RateLimits::API_NAMES {
            let limits = configured_limits(&specs(&[&format!("{api}=10/100")]), &[], true, &known()).unwrap();
            let windows = &limits.per_api[api];
            assert_eq!((windows[0].limit, windows[1].limit), (10, 100), "{api}");
            assert!(limits.per_caller.is_empty(), "{api} is an API, not a caller");
            assert_eq!(limits.windows(api, "contoso", "any").len(), 2);
        }
        let limits = configured_limits(&specs(&["stats=10/100"]), &[], true, &known()).unwrap();
        assert_eq!(limits.windows("stats", "contoso", "any")[0].limit, 10);
        assert_eq!(limits.windows("files", "contoso", "any")[0].limit, 100, "other APIs keep MDE's budget");
    }

    #[test]
    fn a_known_tenant_or_application_gets_a_budget_of_its_own() {
        let app = "11111111-2222-3333-4444-555555555555";
        let limits = configured_limits(&specs(&["contoso=5/50", &format!("{app}=7/70")]), &[], true, &known()).unwrap();
        assert!(limits.per_api.is_empty());
        assert_eq!(limits.windows("files", "contoso", "another app")[0].limit, 5);
        assert_eq!(limits.windows("files", "contoso", app)[0].limit, 7, "the application's budget comes first");
        assert_eq!(limits.windows("files", "fabrikam", "another app")[0].limit, 100);
    }

    #[test]
    fn a_name_that_is_no_api_tenant_or_application_is_refused_with_the_valid_names() {
        let error = configured_limits(&specs(&["stat=10/100"]), &[], true, &known()).unwrap_err().to_string();
        assert!(error.starts_with("--rate-limit stat: no such API, tenant or application"), "{error}");
        for name in RateLimits::API_NAMES.into_iter().chain(["contoso", "11111111-2222-3333-4444-555555555555"]) {
            assert!(error.contains(name), "{name} is not listed in: {error}");
        }
        let guid = "99999999-2222-3333-4444-555555555555";
        assert!(configured_limits(&specs(&[&format!("{guid}=1/1")]), &[], true, &known()).is_err());
        let external = KnownCallers { external_issuers: true, ..known() };
        assert!(
            configured_limits(&specs(&[&format!("{guid}=1/1")]), &[], true, &external).is_ok(),
            "an external issuer's application cannot be listed, so any client id may be one"
        );
        assert!(configured_limits(&specs(&["fabrikam=1/1"]), &[], true, &external).is_err());
    }

    #[test]
    fn only_a_known_application_can_be_exempted() {
        let app = "11111111-2222-3333-4444-555555555555";
        let limits = configured_limits(&[], &specs(&[app]), true, &known()).unwrap();
        assert!(limits.exempt.contains(app));
        let error = configured_limits(&[], &specs(&["contoso"]), true, &known()).unwrap_err().to_string();
        assert!(error.starts_with("--rate-limit-exempt contoso: no such application"), "{error}");
        assert!(error.contains(app), "{error}");
    }

    #[test]
    fn a_malformed_or_zero_budget_is_refused() {
        for spec in ["files", "files=10", "files=0/100", "files=ten/100"] {
            assert!(configured_limits(&specs(&[spec]), &[], true, &known()).is_err(), "{spec}");
        }
    }
}
