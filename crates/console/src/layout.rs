//! The page frame: head (assets, htmx's safe configuration), navigation, logout.

use maud::{html, Markup, DOCTYPE};

use crate::assets::url;
use crate::session::Auth;

/// htmx's configuration (read from this meta tag when htmx loads): no eval (`hx-on`, `js:`),
/// no script tags from fragments, requests to this origin only, and no inline `<style>` of its
/// own (the CSP would refuse it).
const HTMX_CONFIG: &str = r#"{"allowEval":false,"allowScriptTags":false,"selfRequestsOnly":true,"includeIndicatorStyles":false,"historyCacheSize":0,"refreshOnHistoryMiss":true}"#;

/// A whole page.
pub(crate) fn frame(title: &str, auth: Option<&Auth>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="htmx-config" content=(HTMX_CONFIG);
                meta name="referrer" content="same-origin";
                title { (title) " · crowsnest" }
                link rel="stylesheet" href=(url("console.css"));
                link rel="stylesheet" href=(url("uPlot.min.css"));
                script src=(url("htmx.min.js")) defer {}
                script src=(url("uPlot.min.js")) defer {}
                script src=(url("console.js")) defer {}
            }
            body hx-headers=(auth.map(|a| format!(r#"{{"X-CSRF-Token":"{}"}}"#, a.csrf)).unwrap_or_default()) {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    span.brand { "crowsnest" }
                    @if let Some(auth) = auth {
                        nav aria-label="Main" {
                            a href="/dashboard" { "Overview" }
                            a href="/search" { "Search" }
                            a href="/alerts" { "Alerts" }
                            a href="/incidents" { "Incidents" }
                            a href="/exec" { "Exec sessions" }
                            a href="/rules" { "Rules" }
                            a href="/coverage" { "ATT&CK" }
                            a href="/compliance" { "Compliance" }
                        }
                        form.logout method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(auth.csrf);
                            span.who { "token " code { (auth.name) } @if auth.admin { " (admin)" } }
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main #main { (body) }
            }
        }
    }
}
