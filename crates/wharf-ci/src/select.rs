//! `--step NAME`: which steps a run is made of.
//!
//! A name picks a step, or a whole group. Picked steps keep their order in
//! `[ci] steps` and their group (a step picked from a group runs in that
//! group, alone or with the others picked from it); naming a group and one
//! of its steps is the whole group. Names are matched exactly: they are
//! unique in a valid `wharf.toml`.

use thiserror::Error;
use wharf_config::{CiGroup, CiStep};

/// `--step` named nothing in `[ci]`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "no step or group named {name:?} in [ci]; {}the steps are {}",
    .suggestion.as_ref().map(|s| format!("did you mean {s:?}? ")).unwrap_or_default(),
    .known
)]
pub struct SelectError {
    pub name: String,
    /// The closest known name, if one is close enough to be a typo.
    pub suggestion: Option<String>,
    /// Every step, as [`describe`] writes them.
    pub known: String,
}

/// The steps of `steps` that `names` pick, in order; all of them when
/// `names` is empty. Every name must pick something.
pub fn select(steps: &[CiStep], names: &[String]) -> Result<Vec<CiStep>, SelectError> {
    if names.is_empty() {
        return Ok(steps.to_vec());
    }
    let all: Vec<&str> = steps
        .iter()
        .flat_map(|step| {
            let mut names = vec![step.name()];
            if let CiStep::Group(g) = step {
                names.extend(g.steps.iter().map(|r| r.name.as_str()));
            }
            names
        })
        .collect();
    if let Some(name) = names.iter().find(|n| !all.contains(&n.as_str())) {
        return Err(SelectError {
            name: name.clone(),
            suggestion: closest(name, &all).map(str::to_string),
            known: describe(steps),
        });
    }
    let picked = |name: &str| names.iter().any(|n| n == name);
    Ok(steps
        .iter()
        .filter_map(|step| match step {
            CiStep::Run(run) => picked(&run.name).then(|| step.clone()),
            CiStep::Group(group) if picked(&group.name) => Some(step.clone()),
            CiStep::Group(group) => {
                let steps: Vec<_> = group
                    .steps
                    .iter()
                    .filter(|r| picked(&r.name))
                    .cloned()
                    .collect();
                (!steps.is_empty()).then(|| {
                    CiStep::Group(CiGroup {
                        steps,
                        ..group.clone()
                    })
                })
            }
        })
        .collect())
}

/// `Setup, Checks (Style, Audit), Tests`: the steps, a group's in
/// parentheses after its name.
pub fn describe(steps: &[CiStep]) -> String {
    steps
        .iter()
        .map(|step| match step {
            CiStep::Run(run) => run.name.clone(),
            CiStep::Group(group) => {
                let names: Vec<&str> = group.steps.iter().map(|r| r.name.as_str()).collect();
                format!("{} ({})", group.name, names.join(", "))
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// How many steps (not groups) `steps` holds.
pub fn count(steps: &[CiStep]) -> usize {
    steps
        .iter()
        .map(|step| match step {
            CiStep::Run(_) => 1,
            CiStep::Group(group) => group.steps.len(),
        })
        .sum()
}

/// The name most like `name`, ignoring case, if close enough to be a typo.
fn closest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    let lower = name.to_lowercase();
    known
        .iter()
        .map(|k| (*k, strsim::jaro_winkler(&lower, &k.to_lowercase())))
        .filter(|(_, score)| *score >= 0.8)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(k, _)| k)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use wharf_config::CiRun;

    fn run(name: &str) -> CiRun {
        CiRun {
            name: name.into(),
            run: format!("bin/{}", name.to_lowercase()),
        }
    }

    fn steps() -> Vec<CiStep> {
        vec![
            CiStep::Run(run("Setup")),
            CiStep::Group(CiGroup {
                name: "Checks".into(),
                parallel: 3,
                steps: vec![run("Style"), run("Audit"), run("Secrets")],
            }),
            CiStep::Run(run("Tests")),
        ]
    }

    fn names(steps: &[CiStep]) -> String {
        describe(steps)
    }

    fn pick(names: &[&str]) -> Result<Vec<CiStep>, SelectError> {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        select(&steps(), &names)
    }

    #[test]
    fn no_name_is_every_step() {
        assert_eq!(pick(&[]).unwrap(), steps());
        assert_eq!(
            names(&steps()),
            "Setup, Checks (Style, Audit, Secrets), Tests"
        );
        assert_eq!(count(&steps()), 5);
    }

    #[test]
    fn names_pick_steps_in_config_order() {
        assert_eq!(names(&pick(&["Tests", "Setup"]).unwrap()), "Setup, Tests");
        assert_eq!(names(&pick(&["Tests"]).unwrap()), "Tests");
    }

    #[test]
    fn a_step_of_a_group_runs_in_its_group() {
        let picked = pick(&["Secrets", "Style"]).unwrap();
        assert_eq!(names(&picked), "Checks (Style, Secrets)");
        let CiStep::Group(group) = &picked[0] else {
            panic!("{picked:?}")
        };
        assert_eq!(group.parallel, 3);
    }

    #[test]
    fn a_group_name_picks_the_whole_group() {
        assert_eq!(
            names(&pick(&["Checks", "Audit"]).unwrap()),
            "Checks (Style, Audit, Secrets)"
        );
    }

    #[test]
    fn an_unknown_name_names_the_known_steps() {
        let error = pick(&["Tests", "tset"]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "no step or group named \"tset\" in [ci]; did you mean \"Tests\"? the steps are Setup, Checks (Style, Audit, Secrets), Tests"
        );
        let error = pick(&["xyzzy"]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "no step or group named \"xyzzy\" in [ci]; the steps are Setup, Checks (Style, Audit, Secrets), Tests"
        );
    }
}
