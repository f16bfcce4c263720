//! What the commands print on stdout. A reader that goes away (`fjord list --json | head -1`,
//! `| true`) ends the command quietly with status 0, as it would for `ls | true`: nobody is
//! reading, so there is nothing left to do. `println!` would panic there (status 101).
//!
//! Every command but `fjord dev`'s supervisor prints through [`outln!`] and [`out!`].

use std::io::Write;

/// Writes `args` (and a newline if `newline`) to stdout; a closed stdout exits the process with
/// status 0, any other write error with status 1 and a message on stderr.
pub fn write_stdout(args: std::fmt::Arguments<'_>, newline: bool) {
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_fmt(args)
        .and_then(|()| if newline { stdout.write_all(b"\n") } else { Ok(()) });
    if let Err(e) = written {
        exit_on_write_error(&e);
    }
}

/// Ends the process for an error writing stdout: quietly (status 0) when the reader is gone.
pub fn exit_on_write_error(e: &std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("error: writing to stdout: {e}");
    std::process::exit(1);
}

/// `println!` that ends the command quietly when stdout is closed.
macro_rules! outln {
    () => {
        $crate::output::write_stdout(format_args!(""), true)
    };
    ($($arg:tt)*) => {
        $crate::output::write_stdout(format_args!($($arg)*), true)
    };
}

/// `print!` that ends the command quietly when stdout is closed.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write_stdout(format_args!($($arg)*), false)
    };
}

pub(crate) use {out, outln};
