//! `firedrill validate PATH...`: every problem of every drill file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::drill;
use crate::error::{EXIT_OK, Error, plural};

/// Drill files named on the command line: files as given, directories
/// searched for `*.yaml` and `*.yml` (recursively, sorted).
pub fn drill_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Error> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let before = files.len();
            collect_yaml(path, &mut files).map_err(|source| Error::ReadDir {
                path: path.clone(),
                source,
            })?;
            if files.len() == before {
                return Err(Error::NoDrillFiles(path.clone()));
            }
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

fn collect_yaml(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for entry in entries {
        // A symlinked directory is not followed: no loops, nothing outside.
        if entry.symlink_metadata().is_ok_and(|meta| meta.is_dir()) {
            collect_yaml(&entry, files)?;
        } else if entry
            .extension()
            .is_some_and(|ext| ext == "yaml" || ext == "yml")
        {
            files.push(entry);
        }
    }
    Ok(())
}

/// Checks every drill, printing `ok: ...` or its problems as it goes.
pub(super) fn validate(paths: &[PathBuf]) -> Result<i32, Error> {
    let files = drill_files(paths)?;
    let color = super::stderr_color();
    let mut invalid = 0;
    let mut problems = 0;
    for file in &files {
        match drill::load(file) {
            Ok(loaded) => {
                println!(
                    "ok: {} ({}, {} steps)",
                    file.display(),
                    loaded.drill.name,
                    loaded.drill.steps.len()
                );
                for warning in unset_variables(&loaded, &BTreeSet::new()) {
                    eprintln!("{warning}");
                }
            }
            Err(report) => {
                invalid += 1;
                problems += report.problems.len();
                eprint!("{}", report.render(color));
            }
        }
    }
    if invalid > 0 {
        return Err(Error::InvalidDrills {
            invalid,
            total: files.len(),
            problems,
        });
    }
    println!("{} drill{} valid", files.len(), plural(files.len()));
    Ok(EXIT_OK)
}

/// Warnings for every `${NAME}` a service or step command expands that
/// nothing sets, so it would expand to empty: a name is set when it is a
/// drill variable, in `extra` (`--var`), built in, a target's variable, in
/// the service's `env`, written by a step the command's step needs (directly
/// or not), or assigned in the command itself. Not an error: the runner's own
/// environment reaches commands too.
pub(super) fn unset_variables(
    loaded: &drill::LoadedDrill,
    extra: &BTreeSet<String>,
) -> Vec<String> {
    let drill = &loaded.drill;
    let mut known = drill::known_vars(drill);
    known.extend(extra.iter().cloned());
    let path = loaded.path.display();
    let mut warnings = Vec::new();
    let mut warn = |place: String, what: String, name: &str| {
        warnings.push(format!(
            "warning: {place}: {what} uses `${name}`, which nothing sets: it expands to empty\n  help: add `{name}` to `vars:` (or pass `--var {name}=...`), or write it to $FIREDRILL_OUTPUT in a step this one needs"
        ));
    };
    for (name, service) in &drill.services {
        let mut known = known.clone();
        known.extend(service.env.keys().cloned());
        for (_, used) in crate::runbook::unset_names_in(&service.run, &known) {
            warn(path.to_string(), format!("service `{name}`"), &used);
        }
    }
    let scripts: BTreeMap<&str, Vec<&str>> = drill
        .steps
        .iter()
        .map(|step| (step.id.value.as_str(), step_scripts(step)))
        .collect();
    let needs: BTreeMap<&str, Vec<&str>> = drill
        .steps
        .iter()
        .map(|step| {
            (
                step.id.value.as_str(),
                step.needs.iter().map(|need| need.value.as_str()).collect(),
            )
        })
        .collect();
    for step in &drill.steps {
        let id = step.id.value.as_str();
        let mut known = known.clone();
        // Everything upstream of the step: what those steps write is set.
        let mut upstream: Vec<&str> = needs.get(id).cloned().unwrap_or_default();
        let mut seen = BTreeSet::new();
        while let Some(need) = upstream.pop() {
            if !seen.insert(need) {
                continue;
            }
            for script in scripts.get(need).into_iter().flatten() {
                known.extend(crate::runbook::names_assigned_in(script));
            }
            upstream.extend(needs.get(need).into_iter().flatten());
        }
        for script in scripts.get(id).into_iter().flatten() {
            for (_, used) in crate::runbook::unset_names_in(script, &known) {
                warn(
                    format!("{path}:{}", step.id.loc.line),
                    format!("step `{id}`"),
                    &used,
                );
            }
        }
    }
    warnings
}

/// The shell commands of a step: `run`, a `recover: {run}`, a `run` fault and its revert.
fn step_scripts(step: &drill::Step) -> Vec<&str> {
    match &step.action {
        drill::Action::Run(run) => vec![run.as_str()],
        drill::Action::Recover(recover) => recover.value.run.as_deref().into_iter().collect(),
        drill::Action::Fault(fault) => {
            let mut scripts = Vec::new();
            if let drill::FaultSpec::Shell(script) = &fault.spec {
                scripts.push(script.as_str());
            }
            if let drill::Revert::Shell(script) = &fault.revert {
                scripts.push(script.as_str());
            }
            scripts
        }
        drill::Action::Probe(_) | drill::Action::Wait(_) | drill::Action::Apply(_) => Vec::new(),
    }
}
