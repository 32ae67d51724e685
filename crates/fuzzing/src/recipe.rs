//! Sinfonia recipes: YAML from a recipe repository or a cloudlet.

use sinfonia::Recipe;

/// Loads `data` (when it is UTF-8) as a recipe and, when it is accepted,
/// checks that writing it back gives YAML that loads to the same recipe:
/// `convert` writes recipes that cloudlets then load.
///
/// # Panics
///
/// When an accepted recipe cannot be written, or does not survive the
/// round trip.
pub fn recipe(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(recipe) = Recipe::from_yaml(text) else {
        return;
    };
    let yaml = match recipe.to_yaml() {
        Ok(yaml) => yaml,
        Err(error) => panic!("accepted recipe {recipe:?} cannot be written: {error}"),
    };
    match Recipe::from_yaml(&yaml) {
        Ok(again) => assert_eq!(again, recipe, "the recipe changed when written as {yaml:?}"),
        Err(error) => panic!("recipe written as {yaml:?} is refused: {error}"),
    }
}
