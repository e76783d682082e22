//! No echo of typed keys while the bars are drawn.
//!
//! The bars leave the cursor at the right edge of their last line, so the
//! terminal's echo of a key — the `^C` of Ctrl-C included — wraps onto a new
//! line and the next redraw starts one line too low, leaving a torn copy of
//! the bars behind. Echo is turned off on the terminal of stdin while the
//! display runs and restored when this guard drops. Signals still work.

use std::io::IsTerminal;

use rustix::termios::{self, LocalModes, OptionalActions, Termios};

/// Restores the terminal's echo when dropped.
pub struct EchoOff {
    saved: Option<Termios>,
}

impl EchoOff {
    /// Turns echo off if `active` and stdin is a terminal; otherwise does
    /// nothing. Errors are ignored: the display only looks worse.
    pub fn new(active: bool) -> Self {
        let stdin = std::io::stdin();
        if !active || !stdin.is_terminal() {
            return Self { saved: None };
        }
        let Ok(saved) = termios::tcgetattr(&stdin) else {
            return Self { saved: None };
        };
        let mut quiet = saved.clone();
        quiet.local_modes.remove(LocalModes::ECHO);
        match termios::tcsetattr(&stdin, OptionalActions::Now, &quiet) {
            Ok(()) => Self { saved: Some(saved) },
            Err(_) => Self { saved: None },
        }
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            let _ = termios::tcsetattr(std::io::stdin(), OptionalActions::Now, saved);
        }
    }
}
