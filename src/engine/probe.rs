//! One attempt of a probe (docs/drill-format.md, `probes`), and waiting for
//! probes to hold.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::drill::{Expect, HttpProbe, Probe};
use crate::process;
use crate::target::{ProbeOutcome, RunContext, Target};
use crate::vars::expand;
use crate::watch::{Pattern, Printed, Watch};

/// Runs one attempt of a probe.
pub async fn check(
    probe: &Probe,
    env: &BTreeMap<String, String>,
    target: &dyn Target,
    ctx: &RunContext,
) -> ProbeOutcome {
    let timeout = probe.attempt_timeout();
    if let Some(command) = &probe.command {
        let command = process::Cmd::shell(&ctx.run_id, command)
            .envs(env)
            .cwd(&ctx.scenario_dir)
            .timeout(timeout);
        return check_command(&command, probe.expect.as_ref(), timeout).await;
    }
    if let Some(http) = &probe.http {
        return check_http(http, env, timeout).await;
    }
    if let Some(tcp) = &probe.tcp {
        let address = expand(&tcp.address, env);
        return match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&address)).await {
            Ok(Ok(_)) => ProbeOutcome::pass(format!("connected to {address}")),
            Ok(Err(error)) => ProbeOutcome::fail(format!("cannot connect to {address}: {error}")),
            Err(_) => ProbeOutcome::fail(format!(
                "no connection to {address} within {}",
                crate::duration::format_duration(timeout)
            )),
        };
    }
    if let Some(k8s) = &probe.k8s {
        return match target.kube() {
            // The probe's own timeout, not the client's (30 s): an API
            // server that accepts and never answers must fail it in time.
            Some(kube) => match tokio::time::timeout(timeout, kube.probe(k8s, ctx)).await {
                Ok(outcome) => outcome,
                Err(_) => ProbeOutcome::fail(format!(
                    "no answer from the API server within {}",
                    crate::duration::format_duration(timeout)
                )),
            },
            None => ProbeOutcome::fail("k8s probes need a Kubernetes target"),
        };
    }
    ProbeOutcome::fail("the probe has no check")
}

/// Checks a command's result against `expect` (default: exit 0). The text
/// checks see stdout followed by stderr: many tools (`etcdctl endpoint
/// health`) report on stderr.
pub fn meets(
    expect: Option<&Expect>,
    exit_code: Option<i32>,
    printed: &Printed<'_>,
) -> Result<(), String> {
    let want_exit = expect.and_then(|e| e.exit).unwrap_or(0);
    match exit_code {
        Some(code) if code == want_exit => {}
        Some(code) => return Err(format!("exit code {code}, expected {want_exit}")),
        None => return Err("killed by a signal".to_owned()),
    }
    if let Some(text) = expect.and_then(|e| e.stdout_contains.as_deref())
        && let Err(note) = printed.contains(text)
    {
        return Err(format!("stdout does not contain {text:?}{note}"));
    }
    if let Some(pattern) = expect.and_then(|e| e.stdout_matches.as_ref()) {
        let compiled = pattern_of(&pattern.value)?;
        // `$` matches after the last line: the one line ending a command
        // prints after it does not count (docs/drill-format.md).
        if let Err(note) = printed.matches(&compiled, true) {
            let whole = printed.kept.concat();
            return Err(format!(
                "stdout does not match {}: it was {}{note}",
                crate::text::quoted(&pattern.value, 200),
                crate::text::quoted(crate::text::without_final_newline(&whole), 200)
            ));
        }
    }
    Ok(())
}

/// A probe's `stdout_matches`, as it is searched: `^` and `$` at the start and
/// end of the whole output.
fn pattern_of(source: &str) -> Result<Pattern, String> {
    Pattern::new(source, false)
        .map_err(|error| format!("bad regex {}: {error}", crate::text::quoted(source, 200)))
}

/// A watch for `expect`'s text checks, to see every byte of stdout and stderr.
fn watch_for(expect: Option<&Expect>) -> Option<Watch> {
    let expect = expect?;
    let texts: Vec<String> = expect.stdout_contains.iter().cloned().collect();
    let patterns: Vec<Pattern> = expect
        .stdout_matches
        .iter()
        .filter_map(|pattern| pattern_of(&pattern.value).ok())
        .collect();
    if texts.is_empty() && patterns.is_empty() {
        return None;
    }
    Some(Watch::new(&texts, patterns).strip_final_newline())
}

async fn check_command(
    command: &process::Cmd,
    expect: Option<&Expect>,
    timeout: Duration,
) -> ProbeOutcome {
    let command = command.clone().watching(watch_for(expect));
    match command.run_captured().await {
        Err(error) => ProbeOutcome::fail(format!("cannot start /bin/sh: {error}")),
        Ok((finished, _)) if finished.timed_out => ProbeOutcome::fail(format!(
            "timed out after {}",
            crate::duration::format_duration(timeout)
        )),
        Ok((finished, stdout)) => {
            let printed = Printed {
                kept: &[&stdout, &finished.output],
                dropped: finished.dropped,
                seen: finished.seen.as_ref(),
            };
            match meets(expect, finished.exit_code, &printed) {
                Ok(()) => ProbeOutcome::pass(process::tail(&stdout, 3)),
                Err(mut detail) => {
                    let out = process::tail(stdout.trim_end(), 5);
                    let err = process::tail(finished.output.trim_end(), 5);
                    if !out.is_empty() {
                        detail.push_str(&format!("\nstdout: {out}"));
                    }
                    if !err.is_empty() {
                        detail.push_str(&format!("\nstderr: {err}"));
                    }
                    ProbeOutcome::fail(detail)
                }
            }
        }
    }
}

async fn check_http(
    http: &HttpProbe,
    env: &BTreeMap<String, String>,
    timeout: Duration,
) -> ProbeOutcome {
    let url = expand(&http.url, env);
    let client = match reqwest::Client::builder()
        .timeout(timeout)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::limited(5))
        .build()
    {
        Ok(client) => client,
        Err(error) => return ProbeOutcome::fail(format!("http client: {error}")),
    };
    let response = match client.get(&url).send().await {
        Ok(response) => response,
        Err(error) => {
            let why = if error.is_timeout() {
                "timed out".to_owned()
            } else {
                // reqwest's own message is generic; the cause says what happened.
                let mut text = error.to_string();
                let mut source = std::error::Error::source(&error);
                while let Some(cause) = source {
                    text = cause.to_string();
                    source = cause.source();
                }
                text
            };
            return ProbeOutcome::fail(format!("GET {url}: {why}"));
        }
    };
    let status = response.status().as_u16();
    let status_ok = match http.status {
        Some(want) => status == want,
        None => (200..300).contains(&status),
    };
    let body = response.text().await.unwrap_or_default();
    if !status_ok {
        return ProbeOutcome::fail(format!(
            "GET {url}: status {status}, expected {}",
            http.status.map_or("2xx".to_owned(), |s| s.to_string())
        ));
    }
    if let Some(text) = &http.body_contains
        && !body.contains(text.as_str())
    {
        let shown: String = body.chars().take(200).collect();
        return ProbeOutcome::fail(format!(
            "GET {url}: status {status} but the body does not contain {text:?} (body: {shown:?})"
        ));
    }
    ProbeOutcome::pass(format!("GET {url}: {status}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drill::yaml::Located;

    #[test]
    fn expectations_check_exit_and_stdout() {
        assert!(meets(None, Some(0), &Printed::whole(&[""])).is_ok());
        assert!(meets(None, Some(1), &Printed::whole(&[""])).is_err());
        let expect = Expect {
            exit: Some(3),
            stdout_contains: Some("healthy".into()),
            stdout_matches: Some(Located::new("^ok [0-9]+".to_owned())),
        };
        assert!(meets(Some(&expect), Some(3), &Printed::whole(&["ok 12 healthy"])).is_ok());
        assert_eq!(
            meets(Some(&expect), Some(0), &Printed::whole(&["ok 12 healthy"])).unwrap_err(),
            "exit code 0, expected 3"
        );
        assert!(meets(Some(&expect), Some(3), &Printed::whole(&["ok 12 sick"])).is_err());
        assert!(meets(Some(&expect), Some(3), &Printed::whole(&["no healthy"])).is_err());
    }

    #[test]
    fn stdout_matches_ignores_one_final_newline_and_shows_newlines() {
        let expect = Expect {
            exit: None,
            stdout_contains: None,
            stdout_matches: Some(Located::new("^ok\n3$".to_owned())),
        };
        assert_eq!(
            meets(Some(&expect), Some(0), &Printed::whole(&["ok\n3\n"])),
            Ok(())
        );
        assert_eq!(
            meets(Some(&expect), Some(0), &Printed::whole(&["ok\n3"])),
            Ok(())
        );
        // Only one: a blank last line is something the command printed.
        assert_eq!(
            meets(Some(&expect), Some(0), &Printed::whole(&["ok\n3\n\n"])).unwrap_err(),
            r#"stdout does not match "^ok\n3$": it was "ok\n3\n""#
        );
    }

    /// A probe whose marker is in the middle of more output than is kept:
    /// stdout and stderr are searched as they stream, the marker split
    /// between them too, and an absent marker fails saying all was searched.
    #[tokio::test]
    async fn a_marker_in_output_that_was_not_kept_is_seen() {
        let probe = |script: &str, contains: &str, matches: Option<&str>| {
            let command =
                process::Cmd::shell("probe-test", script).timeout(Duration::from_secs(30));
            let expect = Expect {
                exit: None,
                stdout_contains: Some(contains.into()),
                stdout_matches: matches.map(|m| Located::new(m.to_owned())),
            };
            async move { check_command(&command, Some(&expect), Duration::from_secs(30)).await }
        };
        let x = "head -c 3000000 /dev/zero | tr '\\0' x";
        let buried = probe(
            &format!("{x}; echo; echo MARK; echo 'status: ok'; {x}"),
            "MARK",
            Some("(?m)^status: ok$"),
        )
        .await;
        assert!(buried.ok, "{}", crate::text::first_line(&buried.detail));
        // Split between stdout and stderr: the text checks see one output.
        let split = probe(
            &format!("{x}; printf 'MA'; printf 'RK\\n' >&2; {x} >&2"),
            "MARK",
            None,
        )
        .await;
        assert!(split.ok, "{}", crate::text::first_line(&split.detail));
        let absent = probe(&format!("echo MARX; {x}"), "MARK", None).await;
        assert!(!absent.ok);
        assert!(
            absent.detail.starts_with(
                "stdout does not contain \"MARK\" (all 3000005 bytes of the output were searched"
            ),
            "{}",
            crate::text::first_line(&absent.detail)
        );
    }

    #[tokio::test]
    async fn one_huge_line_of_output_is_shown_as_its_start_and_its_end() {
        // 10 MB with no newline: the failure detail holds a bounded head and
        // tail of what was kept, and says how much it cut.
        let command = process::Cmd::shell(
            "probe-test",
            "head -c 10000000 /dev/zero | tr '\\0' x; printf END; exit 1",
        )
        .timeout(Duration::from_secs(60));
        let outcome = check_command(&command, None, Duration::from_secs(60)).await;
        assert!(!outcome.ok);
        let detail = &outcome.detail;
        assert!(
            detail.chars().count() < crate::text::MAX_DETAIL + 200,
            "a detail of {} characters",
            detail.chars().count()
        );
        assert!(
            detail.starts_with("exit code 1, expected 0\nstdout: xxx"),
            "{detail:.200}"
        );
        assert!(detail.contains("characters cut here]"), "{detail:.200}");
        assert!(detail.ends_with("xxxEND"), "{detail:.200}");
    }

    #[tokio::test]
    async fn tcp_and_http_probes_really_connect() {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let mut buf = [0u8; 1024];
                let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut buf).await;
                let _ = socket
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\nconnection: close\r\n\r\nall ok\n")
                    .await;
            }
        });
        let env = BTreeMap::from([("ADDR".to_owned(), address.clone())]);
        let ok = check_http(
            &HttpProbe {
                url: "http://${ADDR}/".into(),
                status: Some(200),
                body_contains: Some("all ok".into()),
            },
            &env,
            Duration::from_secs(5),
        )
        .await;
        assert!(ok.ok, "{}", ok.detail);
        let wrong = check_http(
            &HttpProbe {
                url: "http://${ADDR}/".into(),
                status: None,
                body_contains: Some("missing".into()),
            },
            &env,
            Duration::from_secs(5),
        )
        .await;
        assert!(!wrong.ok);
        assert!(
            wrong.detail.contains("does not contain"),
            "{}",
            wrong.detail
        );
        // A port nobody listens on.
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closed_addr = closed.local_addr().unwrap().to_string();
        drop(closed);
        let refused = check_http(
            &HttpProbe {
                url: format!("http://{closed_addr}/"),
                status: None,
                body_contains: None,
            },
            &env,
            Duration::from_secs(5),
        )
        .await;
        assert!(!refused.ok);
    }
}
