//! Deployment recipes: what a cloudlet deploys for a backend UUID.
//!
//! A recipe is a YAML mapping with `chart` and `version` (required),
//! `description`, `values` (passed to Helm) and `restricted` (top level,
//! default true: restricted recipes are never listed by tier 1). Sinfonia
//! loads recipes with a safe loader; so do we, and we refuse anything its
//! schema would refuse, including Python object tags such as the original
//! olive2022 wrote (`!!python/object:uuid.UUID`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Largest recipe accepted: recipes are a few hundred bytes.
pub const MAX_RECIPE_SIZE: usize = 64 * 1024;

/// A Sinfonia deployment recipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// Human-readable description (the VM's name for olive2022).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The Helm chart: a name relative to the recipe repository, or a chart
    /// repository URL.
    pub chart: String,
    /// The chart version.
    pub version: String,
    /// Values passed to Helm.
    #[serde(default)]
    pub values: Map<String, Value>,
    /// Whether tier 1 keeps the recipe private.
    #[serde(default = "restricted_by_default")]
    pub restricted: bool,
}

fn restricted_by_default() -> bool {
    true
}

/// A recipe that cannot be loaded or written.
#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    /// Not YAML, or not of the recipe schema.
    #[error("invalid recipe: {0}")]
    Invalid(String),
    /// The recipe uses YAML tags (such as `!!python/object`), which a safe
    /// loader refuses.
    #[error("invalid recipe: YAML tag `{0}` is not allowed (a safe loader refuses it)")]
    Tag(String),
    /// Larger than [`MAX_RECIPE_SIZE`].
    #[error("invalid recipe: {0} bytes is more than the {MAX_RECIPE_SIZE} allowed")]
    TooLarge(usize),
}

impl Recipe {
    /// Loads a recipe from YAML, as Sinfonia's safe loader and schema would.
    pub fn from_yaml(text: &str) -> Result<Recipe, RecipeError> {
        if text.len() > MAX_RECIPE_SIZE {
            return Err(RecipeError::TooLarge(text.len()));
        }
        if let Some(tag) = find_tag(text) {
            return Err(RecipeError::Tag(tag));
        }
        // The parser's message draws the offending lines under its first
        // one; the first line (what and where) is the message.
        let recipe: Recipe = serde_saphyr::from_str_with_options(text, parse_options())
            .map_err(|e| RecipeError::Invalid(first_line(&e.to_string())))?;
        recipe.check()?;
        Ok(recipe)
    }

    /// The recipe as YAML.
    pub fn to_yaml(&self) -> Result<String, RecipeError> {
        self.check()?;
        serde_saphyr::to_string(self).map_err(|e| RecipeError::Invalid(e.to_string()))
    }

    fn check(&self) -> Result<(), RecipeError> {
        if self.chart.trim().is_empty() {
            return Err(RecipeError::Invalid("`chart` is empty".into()));
        }
        if self.version.trim().is_empty() {
            return Err(RecipeError::Invalid("`version` is empty".into()));
        }
        Ok(())
    }
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().trim().to_owned()
}

/// The parser's budget for one recipe. A recipe is a few dozen nodes; the
/// library's defaults (a million events, 50,000 aliases, 64 MiB of anchored
/// data) let a 64 KiB alias bomb cost tens of MiB per parse, which a burst
/// of requests multiplies. These bounds keep one parse under about a MiB.
fn parse_options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_events = 20_000;
    budget.max_nodes = 10_000;
    budget.max_aliases = 256;
    budget.max_anchors = 256;
    budget.max_recorded_anchor_events = 10_000;
    budget.max_recorded_anchor_bytes = 256 * 1024;
    budget.max_total_scalar_bytes = 2 * MAX_RECIPE_SIZE;
    budget.max_depth = 32;
    budget.max_documents = 1;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options
}

/// The first tag in the document that a safe loader would not resolve to
/// plain data, such as `!!python/object:uuid.UUID` or a local `!tag`.
/// Core-schema tags of plain data (`!!str`, `!!int`…) are fine.
fn find_tag(text: &str) -> Option<String> {
    const PLAIN: [&str; 7] = ["str", "int", "float", "bool", "null", "map", "seq"];
    let parser = serde_saphyr::granit_parser::Parser::new_from_str(text);
    for event in parser {
        // Syntax errors are reported by the deserialiser with a location.
        let Ok((event, _)) = event else { return None };
        if let Some(tag) = event.tag() {
            let plain = tag.handle() == "tag:yaml.org,2002:" && PLAIN.contains(&tag.suffix());
            if !plain {
                return Some(tag.to_string());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const MINIMAL: &str = "chart: vmi\nversion: 0.2.0\n";

    #[test]
    fn defaults_and_round_trip() {
        let recipe = Recipe::from_yaml(MINIMAL).unwrap();
        assert!(recipe.restricted, "restricted defaults to true");
        assert!(recipe.values.is_empty());
        assert_eq!(
            Recipe::from_yaml(&recipe.to_yaml().unwrap()).unwrap(),
            recipe
        );
    }

    #[test]
    fn the_originals_python_tags_are_refused() {
        let original = "chart: https://cmusatyalab.github.io/olive2022/vmi\nversion: 0.1.4\nvalues:\n  containerDisk:\n    name: !!python/object:uuid.UUID\n      int: 1\n";
        assert!(
            matches!(Recipe::from_yaml(original), Err(RecipeError::Tag(tag)) if tag.contains("python/object:uuid.UUID"))
        );
        assert!(matches!(
            Recipe::from_yaml("chart: !custom x\nversion: '1'\n"),
            Err(RecipeError::Tag(_))
        ));
    }

    #[test]
    fn exclamation_marks_in_text_and_plain_tags_are_fine() {
        let yaml = "description: |\n  Hello !world\nchart: !!str vmi # ok!\nversion: \"1!\"\n";
        let recipe = Recipe::from_yaml(yaml).unwrap();
        assert_eq!(recipe.description.as_deref(), Some("Hello !world\n"));
        assert_eq!(recipe.chart, "vmi");
    }

    #[test]
    fn schema_violations_are_refused() {
        for bad in [
            "",
            "version: 1\n",
            "chart: vmi\n",
            "chart: ''\nversion: '1'\n",
            "chart: vmi\nversion: '1'\nvalues: [1, 2]\n",
            "chart: vmi\nversion: '1'\nrestricted: maybe\n",
            "chart: vmi\nversion: '1'\nextra: 1\n",
            "- a list\n",
            "chart: [unclosed\n",
        ] {
            assert!(Recipe::from_yaml(bad).is_err(), "{bad:?} was accepted");
        }
        let huge = format!("{MINIMAL}description: '{}'\n", "x".repeat(MAX_RECIPE_SIZE));
        assert!(matches!(
            Recipe::from_yaml(&huge),
            Err(RecipeError::TooLarge(_))
        ));
    }

    #[test]
    fn billion_laughs_is_bounded() {
        let mut yaml = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let prev = i - 1;
            yaml.push_str(&format!("a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"));
        }
        yaml.push_str("chart: vmi\nversion: '1'\n");
        let started = std::time::Instant::now();
        assert!(Recipe::from_yaml(&yaml).is_err());
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn an_alias_bomb_within_the_size_limit_is_refused_by_the_budget() {
        // Each level repeats the previous one 10 times: 10^5 nodes from a few
        // hundred bytes. Refused on the alias and replay budget, not after
        // materialising a large `values` tree.
        let mut yaml = String::from(
            "chart: vmi\nversion: '1'\nvalues:\n  l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n",
        );
        for i in 1..6 {
            let prev = format!("*l{}", i - 1);
            let items = [prev.as_str(); 10].join(", ");
            yaml.push_str(&format!("  l{i}: &l{i} [{items}]\n"));
        }
        match Recipe::from_yaml(&yaml) {
            Err(RecipeError::Invalid(reason)) => {
                assert!(
                    reason.to_lowercase().contains("budget") || reason.contains("alias"),
                    "{reason}"
                )
            }
            other => panic!("an alias bomb was not refused: {other:?}"),
        }
        // A recipe with a few honest anchors still loads.
        let fine = "chart: vmi\nversion: '1'\nvalues:\n  a: &a {x: 1}\n  b: *a\n";
        assert!(Recipe::from_yaml(fine).is_ok());
    }
}
