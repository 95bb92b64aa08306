//! Every route of the web service and who may use it, in one table.
//!
//! A route can only be added through [`Builder`], which records its access rule at the same
//! time, so no route exists without a rule; `guard::guard` enforces the rule, and the
//! role × route test in `tests/it/web.rs` walks [`rules`] with every role and fails on a route it
//! has no expectation for.

use super::access::{
    Access, Rule, ADMINS, AGENTS, APPELLANTS, AUDITORS, COMPLETENESS_READERS, EVERYONE, EXPORTERS,
    OUTCOME_SETTERS, REVIEWERS, SUPERVISORS,
};
use super::state::St;
use super::{
    api, calibration_api, complaints_api, compliance_api, erasure_pages, export_api, figures_api,
    floor, holds_pages, live, login, operator, outcomes_api, pages, qa_api, qa_pages, reports,
    stream, targets_api,
};
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{delete, get, post, put};
use axum::Router;

struct Builder {
    router: Router<St>,
    rules: Vec<Rule>,
}

impl Builder {
    fn add(
        mut self,
        method: Method,
        path: &'static str,
        access: Access,
        mr: axum::routing::MethodRouter<St>,
    ) -> Self {
        self.rules.push(Rule {
            method,
            path,
            access,
            csrf_in_query: false,
            audited_get: false,
        });
        self.router = self.router.route(path, mr);
        self
    }
    fn get<H: Handler<T, St>, T: 'static>(self, path: &'static str, access: Access, h: H) -> Self {
        self.add(Method::GET, path, access, get(h))
    }
    fn post<H: Handler<T, St>, T: 'static>(self, path: &'static str, access: Access, h: H) -> Self {
        self.add(Method::POST, path, access, post(h))
    }
    fn put<H: Handler<T, St>, T: 'static>(self, path: &'static str, access: Access, h: H) -> Self {
        self.add(Method::PUT, path, access, put(h))
    }
    fn delete<H: Handler<T, St>, T: 'static>(
        self,
        path: &'static str,
        access: Access,
        h: H,
    ) -> Self {
        self.add(Method::DELETE, path, access, delete(h))
    }
    fn beacon(mut self) -> Self {
        if let Some(r) = self.rules.last_mut() {
            r.csrf_in_query = true;
        }
        self
    }
    /// The last route is a GET that writes an audit row: same-site requests only.
    fn audited(mut self) -> Self {
        if let Some(r) = self.rules.last_mut() {
            r.audited_get = true;
        }
        self
    }
}

fn build() -> Builder {
    use Access::*;
    Builder {
        router: Router::new(),
        rules: Vec::new(),
    }
    .get("/login", Public, login::get_login)
    .post("/login", Public, login::post_login)
    .get("/healthz", Public, api::healthz)
    .get("/static/{name}", Public, pages::static_asset)
    .get("/password", Session, login::get_password)
    .post("/password", Session, login::post_password)
    .post("/logout", Session, login::post_logout)
    .get("/", Roles(EVERYONE), pages::home)
    .get("/calls", Roles(EVERYONE), pages::search)
    .audited()
    .get("/calls/{id}", Roles(EVERYONE), pages::call)
    .post(
        "/calls/{id}/export",
        Roles(EXPORTERS),
        export_api::export_zip,
    )
    .get("/api/me", Roles(EVERYONE), api::me)
    .get("/api/calls", Roles(EVERYONE), api::search)
    .audited()
    .get("/api/calls/{id}", Roles(EVERYONE), api::call)
    .get("/api/calls/{id}/audio", Roles(EVERYONE), stream::audio)
    .audited()
    .get("/api/calls/{id}/audio.wav", Roles(EVERYONE), stream::wav)
    .audited()
    .get("/api/calls/{id}/peaks.dat", Roles(EVERYONE), stream::peaks)
    .post("/api/calls/{id}/heard", Roles(EVERYONE), api::heard)
    .beacon()
    .post("/api/calls/{id}/notes", Roles(REVIEWERS), api::add_note)
    .get(
        "/api/calls/{id}/outcome",
        Roles(EVERYONE),
        outcomes_api::get_outcome,
    )
    .put(
        "/api/calls/{id}/outcome",
        Roles(OUTCOME_SETTERS),
        outcomes_api::put_outcome,
    )
    .delete("/api/notes/{id}", Roles(REVIEWERS), api::delete_note)
    .get("/audit", Roles(AUDITORS), pages::audit)
    .audited()
    .get("/api/audit", Roles(AUDITORS), api::audit)
    .audited()
    .get("/api/seats", Roles(SUPERVISORS), api::seats)
    .get("/api/floor", Roles(SUPERVISORS), floor::api_floor)
    .get("/floor", Roles(SUPERVISORS), floor::page_floor)
    .get(
        "/api/reports/completeness",
        Roles(COMPLETENESS_READERS),
        floor::api_completeness,
    )
    // Live listening (404 while `[server] live_listen` is false, and at the hub): audited.
    .get("/live/{seat}", Roles(SUPERVISORS), live::page_view)
    .get("/api/live/{seat}/audio", Roles(SUPERVISORS), live::audio)
    .audited()
    .get("/admin/users", Roles(ADMINS), pages::users)
    .post("/admin/users", Roles(ADMINS), pages::add_user)
    .post("/admin/users/{name}", Roles(ADMINS), pages::change_user)
    .get("/admin/holds", Roles(ADMINS), holds_pages::list)
    .post("/admin/holds", Roles(ADMINS), holds_pages::place)
    .post(
        "/admin/holds/{id}/release",
        Roles(ADMINS),
        holds_pages::release,
    )
    .get("/admin/erasure", Roles(ADMINS), erasure_pages::list)
    .post("/admin/erasure", Roles(ADMINS), erasure_pages::erase)
    .get("/admin/erasure/{id}", Roles(ADMINS), erasure_pages::show)
    .get(
        "/admin/erasure/{id}/{file}",
        Roles(ADMINS),
        erasure_pages::file,
    )
    .post(
        "/admin/erasure/{id}/complete",
        Roles(ADMINS),
        erasure_pages::complete,
    )
    .get("/admin/tokens", Roles(ADMINS), pages::tokens)
    .post("/admin/tokens", Roles(ADMINS), pages::add_token)
    .post(
        "/admin/tokens/{name}/revoke",
        Roles(ADMINS),
        pages::revoke_token,
    )
    .get("/api/scorecards", Roles(EVERYONE), qa_api::list_cards)
    .get("/api/scorecards/{slug}", Roles(EVERYONE), qa_api::get_card)
    .post("/api/scorecards", Roles(SUPERVISORS), qa_api::save_card)
    .get(
        "/api/calls/{id}/evaluations",
        Roles(EVERYONE),
        qa_api::call_evaluations,
    )
    .post(
        "/api/calls/{id}/evaluations",
        Roles(REVIEWERS),
        qa_api::create_evaluation,
    )
    .get(
        "/api/evaluations/{id}",
        Roles(EVERYONE),
        qa_api::get_evaluation,
    )
    .post(
        "/api/evaluations/{id}/answers",
        Roles(REVIEWERS),
        qa_api::save_answers,
    )
    .post(
        "/api/evaluations/{id}/submit",
        Roles(REVIEWERS),
        qa_api::submit,
    )
    .post(
        "/api/evaluations/{id}/acknowledge",
        Roles(AGENTS),
        qa_api::acknowledge,
    )
    .post(
        "/api/evaluations/{id}/dispute",
        Roles(AGENTS),
        qa_api::dispute,
    )
    .post(
        "/api/evaluations/{id}/resolve",
        Roles(REVIEWERS),
        qa_api::resolve,
    )
    .get("/api/plans", Roles(REVIEWERS), qa_api::list_plans)
    .post("/api/plans", Roles(SUPERVISORS), qa_api::create_plan)
    .post(
        "/api/plans/{id}/draw",
        Roles(SUPERVISORS),
        qa_api::draw_plan,
    )
    .get("/api/assignments", Roles(REVIEWERS), qa_api::assignments)
    .post(
        "/api/assignments/{id}/swap",
        Roles(REVIEWERS),
        qa_api::swap_assignment,
    )
    // Every role; the handler narrows to the caller's scope (agents: themselves).
    .get("/api/figures", Roles(EVERYONE), figures_api::get_figures)
    // Leads set goals (their team's, under team scope); reviewers read them in their scope.
    .put("/api/targets", Roles(SUPERVISORS), targets_api::put_target)
    .get("/api/targets", Roles(REVIEWERS), targets_api::get_targets)
    // The complaints register: the store decides who may take which step (scope, filer, the
    // lead who ruled); these rules keep each step to the roles that can ever take it.
    .get("/api/complaints", Roles(EVERYONE), complaints_api::list)
    .post("/api/complaints", Roles(REVIEWERS), complaints_api::file)
    .get("/api/complaints/{id}", Roles(EVERYONE), complaints_api::get)
    .post(
        "/api/complaints/{id}/acknowledge",
        Roles(SUPERVISORS),
        complaints_api::acknowledge,
    )
    .post(
        "/api/complaints/{id}/investigate",
        Roles(SUPERVISORS),
        complaints_api::investigate,
    )
    .post(
        "/api/complaints/{id}/respond",
        Roles(AGENTS),
        complaints_api::respond,
    )
    .post(
        "/api/complaints/{id}/rule",
        Roles(SUPERVISORS),
        complaints_api::rule,
    )
    .post(
        "/api/complaints/{id}/appeal",
        Roles(APPELLANTS),
        complaints_api::appeal,
    )
    .post(
        "/api/complaints/{id}/decide",
        Roles(SUPERVISORS),
        complaints_api::decide,
    )
    .get(
        "/api/complaint-categories",
        Roles(EVERYONE),
        complaints_api::categories,
    )
    .get("/complaints", Roles(EVERYONE), complaints_api::page_list)
    .get(
        "/complaints/{id}",
        Roles(EVERYONE),
        complaints_api::page_one,
    )
    // The operator's page; the handler narrows to the caller's scope (403 outside it).
    .get("/agents/{agent}", Roles(EVERYONE), operator::agent_page)
    .audited()
    .get("/teams/{team}", Roles(EVERYONE), operator::team_page)
    .audited()
    .get("/api/reports/agents", Roles(REVIEWERS), reports::agents)
    .get(
        "/api/reports/questions",
        Roles(REVIEWERS),
        reports::questions,
    )
    .get("/api/reports/trend", Roles(REVIEWERS), reports::trend)
    .get(
        "/api/reports/reviewers",
        Roles(REVIEWERS),
        reports::reviewers,
    )
    .get("/reports", Roles(REVIEWERS), reports::page_view)
    .get("/qa", Roles(REVIEWERS), qa_pages::home)
    .get("/qa/edit/{kind}/{slug}", Roles(SUPERVISORS), qa_pages::edit)
    .get(
        "/api/scripts",
        Roles(EVERYONE),
        compliance_api::list_scripts,
    )
    .get(
        "/api/scripts/{slug}",
        Roles(EVERYONE),
        compliance_api::get_script,
    )
    .post(
        "/api/scripts",
        Roles(SUPERVISORS),
        compliance_api::save_script,
    )
    .get(
        "/api/calls/{id}/checks",
        Roles(EVERYONE),
        compliance_api::call_checks,
    )
    .post(
        "/api/calls/{id}/checks",
        Roles(REVIEWERS),
        compliance_api::create_check,
    )
    .get(
        "/api/checks/{id}",
        Roles(EVERYONE),
        compliance_api::get_check,
    )
    .post(
        "/api/checks/{id}/marks",
        Roles(REVIEWERS),
        compliance_api::save_marks,
    )
    .post(
        "/api/checks/{id}/submit",
        Roles(REVIEWERS),
        compliance_api::submit_check,
    )
    .get(
        "/api/calls/{id}/transcript",
        Roles(EVERYONE),
        compliance_api::get_transcript,
    )
    .post(
        "/api/calls/{id}/transcript",
        Roles(REVIEWERS),
        compliance_api::put_transcript,
    )
    .get("/api/calibrations", Roles(REVIEWERS), calibration_api::list)
    .post(
        "/api/calibrations",
        Roles(SUPERVISORS),
        calibration_api::create,
    )
    .get(
        "/api/calibrations/{id}",
        Roles(REVIEWERS),
        calibration_api::get,
    )
    .post(
        "/api/calibrations/{id}/close",
        Roles(SUPERVISORS),
        calibration_api::close,
    )
    .get(
        "/calibrations/{id}",
        Roles(REVIEWERS),
        calibration_api::page_view,
    )
    .post("/api/control/seats/{seat}/{action}", Control, api::control)
    .get("/metrics", Metrics, api::metrics)
}

/// The router and its rules.
pub fn router() -> (Router<St>, Vec<Rule>) {
    let b = build();
    (b.router, b.rules)
}

/// Every route's rule, for tests and documentation.
pub fn rules() -> Vec<Rule> {
    build().rules
}
