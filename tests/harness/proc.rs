//! External processes: a [`Proc`] guard with its output in a log file, killed on drop (also
//! while a test panics, when it prints the tail of that log first).

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::harness::wait::{poll, POLL};

/// A child process whose stdout and stderr go to a log file (or stdout to a file of its own,
/// see [`Proc::spawn_split`]); killed on drop.
pub struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
    /// Where stdout goes when it is kept apart from the log.
    stdout: Option<PathBuf>,
    exited: Option<ExitStatus>,
}

impl Proc {
    /// Spawns `cmd` with its output in `log_dir/<name>.log`.
    pub fn spawn(name: &str, cmd: Command, log_dir: &Path) -> Proc {
        Self::spawn_inner(name, cmd, log_dir, false)
    }

    /// Spawns `cmd` with its stderr in `log_dir/<name>.log` and its stdout apart, in
    /// `log_dir/<name>.stdout` (read it with [`Proc::stdout`]): for output a test parses.
    pub fn spawn_split(name: &str, cmd: Command, log_dir: &Path) -> Proc {
        Self::spawn_inner(name, cmd, log_dir, true)
    }

    fn spawn_inner(name: &str, mut cmd: Command, log_dir: &Path, split: bool) -> Proc {
        let log = log_dir.join(format!("{name}.log"));
        let err = File::create(&log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
        let (out, stdout) = if split {
            let path = log_dir.join(format!("{name}.stdout"));
            let file =
                File::create(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
            (file, Some(path))
        } else {
            (err.try_clone().expect("clone log file handle"), None)
        };
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name} ({cmd:?}): {e}"));
        Proc {
            name: name.to_string(),
            child,
            log,
            stdout,
            exited: None,
        }
    }

    /// What it wrote on stdout: the separate file of [`Proc::spawn_split`], else the log.
    pub fn stdout(&self) -> String {
        match &self.stdout {
            Some(path) => read_lossy(path),
            None => self.output(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process wrote so far.
    pub fn output(&self) -> String {
        read_lossy(&self.log)
    }

    /// The last `n` lines of its output.
    pub fn tail(&self, n: usize) -> String {
        last_lines(&self.output(), n)
    }

    /// Exit status if it has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().ok().flatten();
        }
        self.exited
    }

    /// The first line of its output that starts with `prefix`.
    fn line_starting(&self, prefix: &str) -> Option<String> {
        self.output()
            .lines()
            .find(|l| l.starts_with(prefix))
            .map(str::to_string)
    }

    /// Waits up to `timeout` for a line of output that starts with `prefix`; returns it.
    pub fn wait_line(&mut self, prefix: &str, timeout: Duration) -> Result<String, String> {
        let found = poll(timeout, POLL, || {
            if let Some(line) = self.line_starting(prefix) {
                return Some(Ok(line));
            }
            let status = self.try_wait()?;
            // One last look: the line may have been written just before it exited.
            Some(self.line_starting(prefix).ok_or_else(|| {
                self.failure(&format!("exited ({status}) before printing {prefix:?}"))
            }))
        });
        found.unwrap_or_else(|| Err(self.failure(&format!("no {prefix:?} line after {timeout:?}"))))
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        poll(timeout, POLL, || self.try_wait())
    }

    /// Sends `signal` ("TERM", "INT", ...) unless it has exited.
    pub fn signal(&mut self, signal: &str) {
        if self.try_wait().is_none() {
            let _ = Command::new("kill")
                .args([&format!("-{signal}"), &self.pid().to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }

    /// Sends SIGINT (Ctrl-C) once and waits up to `timeout` for it to exit.
    pub fn interrupt(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.signal("INT");
        self.wait_exit(timeout)
    }

    /// Waits up to `timeout` for a line of output that contains `needle` (or for the process
    /// to exit); true if one came.
    pub fn wait_contains(&mut self, needle: &str, timeout: Duration) -> bool {
        let has = |p: &Proc| p.output().lines().any(|l| l.contains(needle));
        poll(timeout, POLL, || {
            (has(self) || self.try_wait().is_some()).then_some(())
        });
        has(self)
    }

    /// Sends SIGTERM and waits (10 s at most, then SIGKILL) for it to exit; returns its output.
    pub fn terminate(&mut self) -> String {
        if self.try_wait().is_none() {
            self.signal("TERM");
            if self.wait_exit(Duration::from_secs(10)).is_none() {
                let _ = self.child.kill();
                self.exited = self.child.wait().ok();
            }
        }
        self.output()
    }

    /// A one-paragraph description of what went wrong, with the tail of its log.
    pub fn failure(&self, what: &str) -> String {
        let mut text = format!(
            "{} (pid {}) {what}; last lines of {}:\n{}",
            self.name,
            self.pid(),
            self.log.display(),
            indent(&self.tail(40))
        );
        if let Some(path) = &self.stdout {
            text += &format!(
                "stdout ({}):\n{}",
                path.display(),
                indent(&last_lines(&self.stdout(), 10))
            );
        }
        text
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- {} log tail ({}) ----\n{}",
                self.name,
                self.log.display(),
                self.tail(25)
            );
        }
        if self.try_wait().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The file's text (lossy UTF-8), or "" if it cannot be read.
fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}\n")).collect()
}
