//! Routes with the rate-limit budget each spends, both written once, where the route is defined:
//! a module adds a limited route with [`Routes::limited`], naming its API beside its path, and
//! [`crate::throttle::enforce`] reads the API from what the routes recorded.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::routing::MethodRouter;

use crate::AppState;

/// Routes, and for each that spends a budget of its own, the API it spends (one of
/// [`crate::RateLimits::API_NAMES`]).
#[derive(Default)]
pub(crate) struct Routes {
    router: Router<AppState>,
    apis: HashMap<&'static str, &'static str>,
}

impl Routes {
    pub(crate) fn new() -> Self {
        Routes::default()
    }

    /// A route whose calls spend `api`'s budget.
    pub(crate) fn limited(mut self, path: &'static str, api: &'static str, method: MethodRouter<AppState>) -> Self {
        self.apis.insert(path, api);
        self.route(path, method)
    }

    /// A route MDE does not limit.
    pub(crate) fn route(mut self, path: &'static str, method: MethodRouter<AppState>) -> Self {
        self.router = self.router.route(path, method);
        self
    }

    pub(crate) fn merge(mut self, other: Routes) -> Self {
        self.router = self.router.merge(other.router);
        self.apis.extend(other.apis);
        self
    }

    /// The router, and which API each of its limited routes spends.
    pub(crate) fn into_parts(self) -> (Router<AppState>, Apis) {
        (self.router, Apis(Arc::new(self.apis)))
    }
}

/// Which API each limited route spends, by its path as written at the route (what
/// `MatchedPath` gives a request routed to it).
#[derive(Clone, Default)]
pub(crate) struct Apis(Arc<HashMap<&'static str, &'static str>>);

impl Apis {
    /// The API a request routed to `route` is for; `None` for what MDE does not limit.
    pub(crate) fn of(&self, route: &str) -> Option<&'static str> {
        self.0.get(route).copied()
    }

    /// Every limited route and its API.
    #[cfg(test)]
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&'static str, &'static str)> + '_ {
        self.0.iter().map(|(route, api)| (*route, *api))
    }
}
