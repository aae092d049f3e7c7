//! Progress bars for loops a user waits for.

pub use indicatif::ProgressBar;
use indicatif::{ProgressDrawTarget, ProgressStyle};

/// A bar over `len` items labelled `msg`. It draws to stderr only when stderr is a terminal, so
/// tests, CI logs and pipes stay clean; `CMKD_PROGRESS=0` hides it, `=1` forces it.
pub fn bar(len: u64, msg: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    let forced = std::env::var("CMKD_PROGRESS").ok();
    let target = match forced.as_deref() {
        Some("0") => ProgressDrawTarget::hidden(),
        Some("1") => ProgressDrawTarget::stderr(),
        _ if std::io::IsTerminal::is_terminal(&std::io::stderr()) => ProgressDrawTarget::stderr(),
        _ => ProgressDrawTarget::hidden(),
    };
    pb.set_draw_target(target);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg:>14} [{elapsed_precise}] {wide_bar} {pos}/{len} {per_sec} eta {eta} {prefix}",
    ) {
        pb.set_style(style);
    }
    pb.set_message(msg.to_string());
    pb
}
