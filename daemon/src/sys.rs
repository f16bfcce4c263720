//! The two Linux calls that child-process supervision needs and std does not offer (the agent's
//! process runtime, `fjord dev`). This is the only module with `unsafe`; each use says why it is
//! sound.
#![allow(unsafe_code)]

/// In a child between fork and exec: ask the kernel to SIGKILL this process when the thread that
/// spawned it dies, so a killed supervisor never leaves orphans behind.
pub fn set_parent_death_signal() -> std::io::Result<()> {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes plain integers, touches no memory of ours, and is
    // async-signal-safe, so it may run between fork and exec.
    let rc = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Sends `signal` to every process in the group led by `pid`.
pub fn signal_group(pid: u32, signal: i32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return };
    // SAFETY: kill(2) with a negative pid signals a process group; it takes plain integers and
    // has no memory-safety preconditions. A group that is already gone yields ESRCH, ignored.
    unsafe {
        libc::kill(-pid, signal);
    }
}

/// Sends `signal` to the process `pid`.
pub fn signal_process(pid: u32, signal: i32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return };
    // SAFETY: kill(2) takes plain integers and has no memory-safety preconditions; a process
    // that is already gone yields ESRCH, ignored.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// Makes the child that `command` spawns die with SIGKILL when the thread that spawned it dies
/// (see [`set_parent_death_signal`]): no orphan outlives its supervisor.
pub fn kill_child_with_parent(command: &mut tokio::process::Command) {
    // SAFETY: the closure runs between fork and exec and makes one async-signal-safe syscall,
    // prctl(PR_SET_PDEATHSIG), touching no memory the parent shares.
    unsafe {
        command.pre_exec(set_parent_death_signal);
    }
}
