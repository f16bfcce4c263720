//! `fjord deploy --wait`: follows a deploy until the function is ready or has failed, with a
//! progress bar per node (the image pull, then the instances) on a terminal, and a line per node
//! each time its state changes otherwise (CI logs, pipes).
//!
//! Ready means: the instances the autoscaler wants (at least `min`) are running; with none
//! wanted (min 0), the image is present on a node (so the first call does not pull) or, for a
//! command function, nothing is needed. A failed pull on any node ends the wait with the
//! registry's reason.

use crate::connect::{explain, Admin};
use crate::output::outln;
use fjord_core::node::ImageState;
use fjord_proto::v1 as pb;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

const MIB: f64 = 1024.0 * 1024.0;

/// What one look at the function says.
enum Outcome {
    Ready(String),
    Failed(String),
    Waiting,
}

fn judge(status: &pb::FunctionStatus) -> Outcome {
    let spec = status.record.as_ref().and_then(|r| r.spec.clone()).unwrap_or_default();
    if let Some(failed) = status
        .instances
        .iter()
        .find(|i| ImageState::from_wire(&i.image_state) == ImageState::Failed)
    {
        return Outcome::Failed(format!(
            "node {} could not pull {}: {}",
            failed.node_id, spec.image, failed.image_error
        ));
    }
    let wanted = status.desired.max(spec.min_instances);
    let ready: u32 = status.instances.iter().map(|i| i.ready).sum();
    if wanted > 0 {
        return if ready >= wanted {
            Outcome::Ready(format!("{ready} of {wanted} instances ready"))
        } else {
            Outcome::Waiting
        };
    }
    if spec.image.is_empty() {
        return Outcome::Ready("no instance wanted until the first call (min 0)".into());
    }
    match status
        .instances
        .iter()
        .find(|i| ImageState::from_wire(&i.image_state) == ImageState::Ready)
    {
        Some(node) => Outcome::Ready(format!(
            "image present on node {}; no instance wanted until the first call (min 0)",
            node.node_id
        )),
        None => Outcome::Waiting,
    }
}

fn describe_node(node: &pb::NodeInstances) -> (String, Option<(u64, u64)>) {
    let image = ImageState::from_wire(&node.image_state);
    match image {
        ImageState::Pulling => (
            format!(
                "pulling image {:.1}/{:.1} MiB",
                node.pulled_bytes as f64 / MIB,
                node.image_bytes as f64 / MIB
            ),
            Some((node.pulled_bytes, node.image_bytes.max(1))),
        ),
        ImageState::Failed => (format!("pull failed: {}", node.image_error), None),
        _ => (
            format!(
                "{} ready, {} starting, {} placed{}",
                node.ready,
                node.starting,
                node.placed,
                if image == ImageState::Ready {
                    " (image present)"
                } else {
                    ""
                }
            ),
            Some((u64::from(node.ready), u64::from(node.placed.max(node.ready).max(1)))),
        ),
    }
}

pub async fn wait(admin: &mut Admin, name: &str, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let on_terminal = std::io::stderr().is_terminal();
    let bars = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("  {prefix:<20} [{bar:30}] {msg}")
        .expect("a valid template")
        .progress_chars("=> ");
    let mut per_node: BTreeMap<String, ProgressBar> = BTreeMap::new();
    // Without a terminal: the last line written per node, so each change is written once.
    let mut last_line: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let status = admin
            .get_function(pb::GetFunctionRequest { name: name.into() })
            .await
            .map_err(explain)?
            .into_inner();
        for node in &status.instances {
            let (message, progress) = describe_node(node);
            if !on_terminal {
                if last_line.get(&node.node_id) != Some(&message) {
                    eprintln!("  node {}: {message}", node.node_id);
                    last_line.insert(node.node_id.clone(), message);
                }
                continue;
            }
            let bar = per_node.entry(node.node_id.clone()).or_insert_with(|| {
                let bar = bars.add(ProgressBar::new(1));
                bar.set_style(style.clone());
                bar.set_prefix(format!("node {}", node.node_id));
                bar
            });
            if let Some((position, length)) = progress {
                bar.set_length(length);
                bar.set_position(position.min(length));
            }
            bar.set_message(message);
        }
        match judge(&status) {
            Outcome::Ready(what) => {
                for bar in per_node.values() {
                    bar.finish();
                }
                outln!("{name} is ready: {what}");
                return Ok(());
            }
            Outcome::Failed(why) => {
                for bar in per_node.values() {
                    bar.abandon();
                }
                anyhow::bail!("{name} failed: {why}");
            }
            Outcome::Waiting => {}
        }
        if Instant::now() >= deadline {
            for bar in per_node.values() {
                bar.abandon();
            }
            let pending: Vec<String> = status
                .pending
                .iter()
                .map(|p| format!("{} pending: {}", p.instances, p.reason))
                .collect();
            anyhow::bail!(
                "{name} is not ready after {}s (the deploy itself is stored; see `fjord describe {name}`){}",
                timeout.as_secs(),
                if pending.is_empty() {
                    String::new()
                } else {
                    format!(": {}", pending.join("; "))
                }
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(min: u32, desired: u32, nodes: Vec<pb::NodeInstances>) -> pb::FunctionStatus {
        pb::FunctionStatus {
            record: Some(pb::FunctionRecord {
                spec: Some(pb::FunctionSpec {
                    image: "reg:5000/team/echo@sha256:ab".into(),
                    min_instances: min,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            desired,
            instances: nodes,
            ..Default::default()
        }
    }

    fn node(id: &str, image_state: &str, ready: u32, placed: u32) -> pb::NodeInstances {
        pb::NodeInstances {
            node_id: id.into(),
            image_state: image_state.into(),
            ready,
            placed,
            ..Default::default()
        }
    }

    #[test]
    fn a_failed_pull_on_any_node_ends_the_wait_with_the_registrys_reason() {
        let mut failed = node("n2", "failed", 0, 1);
        failed.image_error = "manifest unknown".into();
        match judge(&status(2, 2, vec![node("n1", "ready", 1, 1), failed])) {
            Outcome::Failed(why) => {
                assert!(why.contains("n2") && why.contains("manifest unknown"), "{why}")
            }
            _ => panic!("a failed pull must end the wait"),
        }
    }

    #[test]
    fn ready_needs_the_wanted_instances_or_with_min_0_the_image_on_a_node() {
        assert!(matches!(
            judge(&status(2, 2, vec![node("n1", "ready", 1, 1)])),
            Outcome::Waiting
        ));
        assert!(matches!(
            judge(&status(
                2,
                2,
                vec![node("n1", "ready", 1, 1), node("n2", "ready", 1, 1)]
            )),
            Outcome::Ready(_)
        ));
        assert!(matches!(
            judge(&status(0, 0, vec![node("n1", "pulling", 0, 0)])),
            Outcome::Waiting
        ));
        assert!(matches!(
            judge(&status(0, 0, vec![node("n1", "ready", 0, 0)])),
            Outcome::Ready(_)
        ));
    }

    #[test]
    fn a_node_line_shows_the_pull_then_the_instances() {
        let mut pulling = node("n1", "pulling", 0, 1);
        pulling.pulled_bytes = 3 << 20;
        pulling.image_bytes = 12 << 20;
        let (message, progress) = describe_node(&pulling);
        assert_eq!(message, "pulling image 3.0/12.0 MiB");
        assert_eq!(progress, Some((3 << 20, 12 << 20)));
        let (message, progress) = describe_node(&node("n1", "ready", 1, 2));
        assert_eq!(message, "1 ready, 0 starting, 2 placed (image present)");
        assert_eq!(progress, Some((1, 2)));
    }
}
