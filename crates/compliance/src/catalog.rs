//! The framework catalogs: TOML files in `catalogs/`, embedded at build time.

use std::sync::OnceLock;

use serde::Deserialize;

/// The ids of the shipped catalogs, in the order they are listed.
pub const CATALOG_IDS: [&str; 8] = [
    "pci-dss-4.0.1",
    "soc2-2017",
    "hipaa-security",
    "gdpr",
    "cis-kubernetes-1.10",
    "cis-docker-1.6",
    "nist-800-190",
    "nist-800-53r5",
];

const SOURCES: [(&str, &str); 8] = [
    (
        "pci-dss-4.0.1",
        include_str!("../catalogs/pci-dss-4.0.1.toml"),
    ),
    ("soc2-2017", include_str!("../catalogs/soc2-2017.toml")),
    (
        "hipaa-security",
        include_str!("../catalogs/hipaa-security.toml"),
    ),
    ("gdpr", include_str!("../catalogs/gdpr.toml")),
    (
        "cis-kubernetes-1.10",
        include_str!("../catalogs/cis-kubernetes-1.10.toml"),
    ),
    (
        "cis-docker-1.6",
        include_str!("../catalogs/cis-docker-1.6.toml"),
    ),
    (
        "nist-800-190",
        include_str!("../catalogs/nist-800-190.toml"),
    ),
    (
        "nist-800-53r5",
        include_str!("../catalogs/nist-800-53r5.toml"),
    ),
];

/// A framework: its controls, in the order the report lists them.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// Id used on the command line and in the API (`pci-dss-4.0.1`).
    pub id: String,
    /// Name.
    pub name: String,
    /// Version of the framework.
    pub version: String,
    /// Every control.
    pub controls: Vec<Control>,
}

/// One control of a catalog.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Control {
    /// The framework's id for it (`10.5.1`, `CC8.1`, `164.312(b)`).
    pub id: String,
    /// crowsnest's one-line summary (not the framework's text).
    pub summary: String,
    /// Evidence checks (names from [`crate::CHECKS`]); none = attest.
    #[serde(default)]
    pub checks: Vec<String>,
    /// NIST SP 800-53 r5 controls it maps to (the bridge between frameworks).
    #[serde(default)]
    pub nist: Vec<String>,
}

fn parsed() -> &'static [Catalog] {
    static CATALOGS: OnceLock<Vec<Catalog>> = OnceLock::new();
    CATALOGS.get_or_init(|| {
        SOURCES
            .iter()
            .filter_map(|(id, text)| match toml::from_str::<Catalog>(text) {
                Ok(catalog) => Some(catalog),
                Err(error) => {
                    // The catalogs are embedded and checked by the tests; this cannot happen in
                    // a tested build, and one broken file must not hide the others.
                    eprintln!("compliance catalog `{id}` does not parse: {error}");
                    None
                }
            })
            .collect()
    })
}

/// Every shipped catalog.
pub fn catalogs() -> &'static [Catalog] {
    parsed()
}

/// The catalog with this id.
pub fn catalog(id: &str) -> Option<&'static Catalog> {
    parsed().iter().find(|c| c.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalog_parses_with_known_checks_and_unique_ids() {
        assert_eq!(catalogs().len(), CATALOG_IDS.len());
        for (catalog, id) in catalogs().iter().zip(CATALOG_IDS) {
            assert_eq!(catalog.id, id);
            assert!(!catalog.controls.is_empty());
            let mut ids: Vec<&str> = catalog.controls.iter().map(|c| c.id.as_str()).collect();
            ids.sort_unstable();
            ids.dedup();
            assert_eq!(ids.len(), catalog.controls.len(), "duplicate ids in {id}");
            for control in &catalog.controls {
                assert!(!control.summary.is_empty());
                for check in &control.checks {
                    assert!(
                        crate::CHECKS.contains(&check.as_str()),
                        "{id} {}: unknown check {check}",
                        control.id
                    );
                }
            }
        }
        let pci = catalog("pci-dss-4.0.1").expect("pci");
        for id in ["10.2.2", "10.5.1", "10.6.1", "10.7.2", "11.5.2"] {
            assert!(pci.controls.iter().any(|c| c.id == id), "{id}");
        }
    }
}
