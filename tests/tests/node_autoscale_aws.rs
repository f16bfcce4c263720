//! Node autoscaling end to end against an EC2 Auto Scaling group in moto (a local AWS API), with
//! real control-plane and node-agent processes. moto plays the cloud: it launches and removes
//! "machines" (instance ids), and the test starts a node agent for each machine it wants to join,
//! tied to it with `--instance-id`, as cloud-init would.
//!
//! - Instances pending for lack of room raise the group's desired capacity in AWS, never past the
//!   policy's `max_nodes`, and the group's status names the max it holds at.
//! - Once demand falls, a node is drained and then exactly its machine is terminated with the
//!   desired capacity decremented (no replacement), one node at a time down to `min_nodes`.
//! - A leader killed right after committing a scale-out leaves a desired capacity of exactly
//!   what that scale-out asked for: the next leader neither repeats it on top nor adds more.
//! - A leader that exits between committing a scale-out and asking AWS for it
//!   (`--test-crash-after-commit node-scale-out`) has it finished by the next leader: the desired
//!   capacity rises to the committed size, once, with no second scale-out committed.
//!
//! Skipped (with a message) without moto unless `FJORD_REQUIRE_DOCKER=1` or `CI=true`; see
//! `fjord_aws::testing`.

use fjord_aws::testing::{create_auto_scaling_group, describe_group, GroupSize, GroupState, MotoServer, TEST_AWS_ENV};
use fjord_aws::SdkConfig;
use fjord_tests::*;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Output;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const ASG: &str = "fjord-workers";
/// Memory each node agent offers: two 400 MiB instances fit, a third does not.
const NODE_MIB: u32 = 1024;
const FUNCTION_YAML_SIZES: &str = "memory_mib: 400\ncpu_millis: 50\n";

/// The control plane reads AWS credentials and region through the standard chain, from its
/// environment, which `Daemon::start` passes on from this process. Set once, before anything
/// starts (nextest runs each test in its own process; under `cargo test` every test sets the
/// same values and the `Once` keeps them from doing it concurrently).
fn export_test_aws_env_to_daemons() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for (name, value) in TEST_AWS_ENV {
            std::env::set_var(name, value);
        }
    });
}

fn json_of(out: &Output) -> Option<serde_json::Value> {
    out.status.success().then(|| serde_json::from_slice(&out.stdout).ok())?
}

/// The group as `fjord nodes groups --json` shows it.
fn workers_group(fjord: &dyn Fn(&[&str]) -> Output) -> Option<serde_json::Value> {
    let groups = json_of(&fjord(&["nodes", "groups", "--json"]))?;
    groups.as_array()?.iter().find(|g| g["name"] == "workers").cloned()
}

fn status_of(group: &serde_json::Value) -> String {
    group["status"].as_str().unwrap_or_default().to_string()
}

/// The committed decisions' actions, oldest first.
fn actions_of(group: &serde_json::Value) -> Vec<String> {
    group["decisions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["action"].as_str().map(str::to_string))
        .collect()
}

/// Sizes asked for by the committed scale-outs ("scale out to N nodes").
fn scale_outs(actions: &[String]) -> Vec<u32> {
    actions
        .iter()
        .filter_map(|a| a.strip_prefix("scale out to ")?.strip_suffix(" nodes")?.parse().ok())
        .collect()
}

/// Instances of `function` the scheduler could not place.
fn pending_instances(fjord: &dyn Fn(&[&str]) -> Output, function: &str) -> Option<u64> {
    let status = json_of(&fjord(&["describe", function, "--json"]))?;
    Some(
        status["pending"]
            .as_array()?
            .iter()
            .filter_map(|p| p["instances"].as_u64())
            .sum(),
    )
}

/// Applies a policy with one `aws-asg` group, `workers`, over [`ASG`], with short windows.
fn apply_policy(fjord: &dyn Fn(&[&str]) -> Output, dir: &Path, max_nodes: u32) {
    apply_policy_with_cooldown(fjord, dir, max_nodes, 500);
}

/// [`apply_policy`] with another `scale_out_cooldown_ms`.
fn apply_policy_with_cooldown(fjord: &dyn Fn(&[&str]) -> Output, dir: &Path, max_nodes: u32, cooldown_ms: u64) {
    let policy = format!(
        "node_groups:\n  - name: workers\n    provider: aws-asg\n    asg_name: {ASG}\n    min_nodes: 1\n\
         \x20   max_nodes: {max_nodes}\n    scale_out_window_ms: 500\n    scale_in_window_ms: 2000\n\
         \x20   scale_out_cooldown_ms: {cooldown_ms}\n    scale_in_cooldown_ms: 500\n"
    );
    let path = dir.join("policy.yaml");
    std::fs::write(&path, policy).unwrap();
    let out = fjord(&["policy", "apply", "-f", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// moto running the Auto Scaling group [`ASG`] (min 0, max 10, one machine to begin with), read
/// with the SDK; remembers the largest desired capacity and every instance id seen in the test.
struct Cloud {
    moto: MotoServer,
    config: SdkConfig,
    seen: Mutex<(u32, BTreeSet<String>)>,
}

impl Cloud {
    /// Starts moto and creates the group; `None` when moto is missing and may be (the test is
    /// skipped). Also returns the first machine's instance id.
    async fn start() -> Option<(Cloud, String)> {
        export_test_aws_env_to_daemons();
        let moto = MotoServer::start()?;
        let cloud = Cloud {
            config: moto.sdk_config(),
            moto,
            seen: Mutex::new((0, BTreeSet::new())),
        };
        let size = GroupSize {
            min: 0,
            max: 10,
            desired: 1,
        };
        create_auto_scaling_group(&cloud.config, ASG, size).await;
        let first_machine = cloud.read().await.expect("the new group").live_instances()[0].to_string();
        Some((cloud, first_machine))
    }

    /// Flags that point a control plane's node autoscaler at moto, ticking every 300 ms.
    fn control_plane_flags(&self) -> Vec<String> {
        [
            "--node-autoscale-interval",
            "300ms",
            "--aws-endpoint-url",
            self.moto.endpoint_url(),
        ]
        .map(String::from)
        .to_vec()
    }

    async fn read(&self) -> Option<GroupState> {
        let group = describe_group(&self.config, ASG).await.ok()?;
        let mut seen = self.seen.lock().unwrap();
        seen.0 = seen.0.max(group.desired);
        seen.1.extend(group.instances.iter().map(|(id, _)| id.clone()));
        Some(group)
    }

    fn max_desired_seen(&self) -> u32 {
        self.seen.lock().unwrap().0
    }

    fn instance_ids_seen(&self) -> BTreeSet<String> {
        self.seen.lock().unwrap().1.clone()
    }
}

/// A node agent for one machine of the group: `--instance-id` ties node `node_id` to it.
/// `more_flags` are extra agent flags.
fn start_machine_agent(
    dir: &Path,
    token_file: &Path,
    control_plane_port: u16,
    node_id: &str,
    instance_id: &str,
    more_flags: &[&str],
) -> Daemon {
    let mut flags = vec!["--instance-id", instance_id];
    flags.extend_from_slice(more_flags);
    start_agent_with(
        dir,
        token_file,
        control_plane_port,
        free_port(),
        node_id,
        NODE_MIB,
        &flags,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn pending_instances_grow_the_asg_up_to_its_max_and_quiet_drains_then_terminates_exactly_that_machine() {
    let Some((cloud, first_machine)) = Cloud::start().await else {
        return;
    };

    let flags = cloud.control_plane_flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let platform = Platform::start_full(0, NODE_MIB, &[], &flags).await;
    let fjord = |args: &[&str]| platform.fjord(args);
    let agent = |node_id: &str, instance_id: &str| {
        let dir = platform.dir.path();
        start_machine_agent(
            dir,
            &platform.token_file,
            platform.control_plane_port,
            node_id,
            instance_id,
            &[],
        )
    };
    // node id -> (machine, agent)
    let mut machines = std::collections::BTreeMap::new();
    machines.insert(
        "asg-node-0".to_string(),
        (first_machine.clone(), agent("asg-node-0", &first_machine)),
    );
    platform.wait_ready(1).await;
    apply_policy(&fjord, platform.dir.path(), 3);

    // Two instances fit on the one node; six wait for room: 2400 MiB, three more nodes' worth,
    // of which the max of 3 allows two.
    let out = platform.deploy_example("work", "sleep", &format!("min: 8\nmax: 8\n{FUNCTION_YAML_SIZES}"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let pending_seen = eventually(
        "instances pending for lack of room",
        Duration::from_secs(30),
        || async { (pending_instances(&fjord, "work")? > 0).then(Instant::now) },
    )
    .await;
    let (raised, scaled_at) = eventually(
        "the desired capacity in AWS to rise",
        Duration::from_secs(30),
        || async {
            let group = cloud.read().await?;
            (group.desired > 1).then(|| (group, Instant::now()))
        },
    )
    .await;
    eprintln!(
        "node autoscaling on AWS: sustained pressure (first pending seen) -> SetDesiredCapacity seen in moto after \
         {} ms (scale_out_window_ms 500, interval 300 ms); desired 1 -> {}",
        scaled_at.duration_since(pending_seen).as_millis(),
        raised.desired
    );
    assert_eq!(raised.desired, 3, "capped at max_nodes: {raised:?}");
    let grown = eventually("AWS to run 3 machines", Duration::from_secs(30), || async {
        let group = cloud.read().await?;
        (group.live_instances().len() == 3).then_some(group)
    })
    .await;

    // The machines asked for have not joined yet: the autoscaler waits for them, tick after tick
    // (each status carries how long ago they were asked for), without asking again.
    let mut statuses = BTreeSet::new();
    eventually(
        "five autoscaler ticks waiting for the new nodes",
        Duration::from_secs(30),
        || {
            let status = workers_group(&fjord).map(|g| status_of(&g)).unwrap_or_default();
            // Waiting for the machines, or holding at the max with instances still pending.
            if status.contains("waiting for 2 new nodes to join") || status.contains("max of 3") {
                statuses.insert(format!("{status} #{}", statuses.len()));
            }
            let cloud = &cloud;
            let ticks = statuses.len();
            async move {
                let group = cloud.read().await?;
                assert_eq!(
                    group.desired, 3,
                    "the desired capacity moved while nodes were joining: {group:?}"
                );
                (ticks >= 40).then_some(())
            }
        },
    )
    .await;

    // The machines boot: an agent each. Six instances now fit, two stay pending, and the group
    // holds at its max.
    for (i, machine) in grown
        .live_instances()
        .iter()
        .filter(|m| **m != first_machine)
        .enumerate()
    {
        let node_id = format!("asg-node-{}", i + 1);
        let daemon = agent(&node_id, machine);
        machines.insert(node_id, (machine.to_string(), daemon));
    }
    platform.wait_ready(3).await;
    let at_max = eventually("the group to hold at its max", Duration::from_secs(30), || async {
        let group = workers_group(&fjord)?;
        let status = status_of(&group);
        let pending = pending_instances(&fjord, "work")?;
        (group["nodes"].as_array()?.len() == 3 && status.contains("max of 3") && pending > 0)
            .then_some((status, pending))
    })
    .await;
    eprintln!("at max: {} instances pending; status: {}", at_max.1, at_max.0);
    let state = cloud.read().await.expect("the group");
    assert_eq!((state.desired, state.live_instances().len()), (3, 3), "{state:?}");

    // Quiet: one instance is enough. The emptiest node is drained, then exactly its machine is
    // terminated with the desired capacity decremented; again, down to min_nodes.
    let out = platform.fjord(&["scale", "work", "--min", "1", "--max", "1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let first_terminated = eventually("a node drained then terminated", Duration::from_secs(60), || async {
        let actions = actions_of(&workers_group(&fjord)?);
        actions
            .iter()
            .find_map(|a| a.strip_prefix("terminate node ").map(str::to_string))
    })
    .await;
    let machine = machines[&first_terminated].0.clone();
    let after_first = eventually(
        "AWS to drop the terminated machine",
        Duration::from_secs(30),
        || async {
            let group = cloud.read().await?;
            (!group.live_instances().contains(&machine.as_str())).then_some(group)
        },
    )
    .await;
    assert_eq!(
        after_first.desired as usize,
        after_first.live_instances().len(),
        "the termination decremented the desired capacity (no replacement): {after_first:?}"
    );
    // The machine is gone: so is its agent.
    machines.get_mut(&first_terminated).unwrap().1.kill9();

    let last = eventually("the group down to min_nodes", Duration::from_secs(60), || async {
        let group = cloud.read().await?;
        (group.desired == 1 && group.live_instances().len() == 1).then_some(group)
    })
    .await;
    let final_group = eventually("the group's nodes down to one", Duration::from_secs(30), || async {
        let group = workers_group(&fjord)?;
        (group["nodes"].as_array()?.len() == 1).then_some(group)
    })
    .await;
    let actions = actions_of(&final_group);
    let terminated: Vec<&str> = actions
        .iter()
        .filter_map(|a| a.strip_prefix("terminate node "))
        .collect();
    assert_eq!(terminated.len(), 2, "two scale-ins, one node at a time: {actions:?}");
    assert_eq!(terminated[0], first_terminated, "{actions:?}");
    for node in &terminated {
        let drain = actions.iter().position(|a| a == &format!("drain node {node}"));
        let terminate = actions.iter().position(|a| a == &format!("terminate node {node}"));
        assert!(
            matches!((drain, terminate), (Some(d), Some(t)) if d < t),
            "node {node} was drained before it was terminated: {actions:?}"
        );
        let machine = &machines[*node].0;
        assert!(
            !last.live_instances().contains(&machine.as_str()),
            "node {node}'s machine {machine} left the group: {last:?}"
        );
    }
    let survivor = last.live_instances()[0];
    assert!(
        machines.values().any(|(m, _)| m == survivor),
        "the machine left is one of the three: {last:?}"
    );
    assert_eq!(scale_outs(&actions), vec![3], "one scale-out, to the max: {actions:?}");
    assert!(
        cloud.max_desired_seen() <= 3,
        "max_nodes is 3: saw {}",
        cloud.max_desired_seen()
    );
    assert_eq!(
        cloud.instance_ids_seen().len(),
        3,
        "no machine was launched beyond the three: {:?}",
        cloud.instance_ids_seen()
    );
    // The function is still served, from the node left.
    let answer = platform.invoke_when_routable("work", "?ms=1", b"", &[]).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_leader_killed_right_after_committing_a_scale_out_does_not_get_it_repeated() {
    let Some((cloud, first_machine)) = Cloud::start().await else {
        return;
    };

    // A new leader gives nodes one heartbeat timeout to report before it commits them down. The
    // agent finds it only after its reconnect backoff (up to 2 s a try, the dead member's turn
    // included), which can exceed 3 s: the live node would be committed down, its instances
    // pending, and a scale-out for them would be right. Ten seconds keeps this test about the
    // scale-out alone.
    let mut flags = cloud.control_plane_flags();
    flags.extend(["--heartbeat-timeout".to_string(), "10s".to_string()]);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut members = Members::start(3, &flags).await;
    let urls = members.all_urls();
    // The agent knows every member (`--control-plane` repeats add up), to follow the failover.
    let other_members: Vec<String> = members.ports.keys().skip(1).map(|id| members.url(*id)).collect();
    let _agent = start_machine_agent(
        members.dir.path(),
        &members.token_file,
        members.ports[&1],
        "asg-node-0",
        &first_machine,
        &["--control-plane", &other_members.join(",")],
    );
    let fjord = |args: &[&str]| members.fjord_at(&urls, args);
    eventually("the node registered and ready", Duration::from_secs(30), || async {
        let nodes = json_of(&fjord(&["nodes", "--json"]))?;
        nodes.as_array()?.iter().any(|n| n["state"] == "ready").then_some(())
    })
    .await;
    // A max well above what the demand justifies, so a repeated scale-out would show.
    apply_policy(&fjord, members.dir.path(), 6);

    // Two instances fit on the node, four wait: 1600 MiB, two more nodes' worth: desired 3.
    let spec = members.dir.path().join("work.yaml");
    let yaml = format!(
        "name: work\ncommand: [{:?}]\nmin: 6\nmax: 6\n{FUNCTION_YAML_SIZES}",
        bin("fjord-sleep").display().to_string()
    );
    std::fs::write(&spec, yaml).unwrap();
    let out = fjord(&["deploy", "-f", spec.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let asked = eventually("the first scale-out committed", Duration::from_secs(30), || async {
        scale_outs(&actions_of(&workers_group(&fjord)?)).first().copied()
    })
    .await;
    // The leader now (on a loaded machine it may not be the one of the cluster's start).
    let leader = members.leader_seen_by_others(None).expect("a leader");
    members.kill(leader);
    let killed_at = Instant::now();
    let fjord = |args: &[&str]| members.fjord_at(&urls, args);
    assert_eq!(asked, 3, "two more nodes for 1600 MiB pending on 1024 MiB nodes");

    let new_leader = eventually("a new leader", Duration::from_secs(30), || async {
        members.leader_seen_by_others(Some(leader)).filter(|l| *l != leader)
    })
    .await;
    let elected_after = killed_at.elapsed();
    // Every status of the new leader's autoscaler carries a time (how long the nodes asked for
    // have been awaited, or how long the pressure has lasted), so each new one is another tick.
    let mut statuses = BTreeSet::new();
    eventually(
        "six ticks of the new leader's autoscaler",
        Duration::from_secs(60),
        || {
            let seen = workers_group(&fjord);
            let status = seen.as_ref().map(status_of).unwrap_or_default();
            if !status.is_empty() && status != "not looked at yet" {
                statuses.insert(status);
            }
            let decisions = seen.map(|g| g["decisions"].to_string());
            let (cloud, ticks) = (&cloud, statuses.len());
            async move {
                let group = cloud.read().await?;
                assert!(
                    group.desired <= asked,
                    "the scale-out was repeated: {group:?}; decisions: {decisions:?}"
                );
                (ticks >= 6 && group.desired == asked).then_some(())
            }
        },
    )
    .await;

    let state = cloud.read().await.expect("the group");
    assert_eq!((state.desired, state.live_instances().len()), (asked, 3), "{state:?}");
    let group = workers_group(&fjord).expect("the group");
    let sizes = scale_outs(&actions_of(&group));
    assert!(
        sizes.iter().all(|to| *to == asked),
        "every scale-out asked for the same absolute size: {group}"
    );
    assert!(
        cloud.max_desired_seen() <= asked,
        "saw desired {}",
        cloud.max_desired_seen()
    );
    eprintln!(
        "failover during scale-out: leader {leader} killed after committing `scale out to {asked}`; member \
         {new_leader} elected after {} ms; desired stayed {asked} over {} ticks of the new leader \
         ({} committed scale-out(s)); last status: {}",
        elected_after.as_millis(),
        statuses.len(),
        sizes.len(),
        status_of(&group)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_leader_that_exits_between_committing_a_scale_out_and_asking_aws_has_it_finished_by_the_next() {
    let Some((cloud, first_machine)) = Cloud::start().await else {
        return;
    };

    // Every member exits right after committing a scale-out, before asking AWS for it; the
    // heartbeat timeout is long for the reason given in the test above.
    let mut flags = cloud.control_plane_flags();
    flags.extend(
        [
            "--heartbeat-timeout",
            "10s",
            "--test-crash-after-commit",
            "node-scale-out",
        ]
        .map(String::from),
    );
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut members = Members::start(3, &flags).await;
    let urls = members.all_urls();
    let other_members: Vec<String> = members.ports.keys().skip(1).map(|id| members.url(*id)).collect();
    let _agent = start_machine_agent(
        members.dir.path(),
        &members.token_file,
        members.ports[&1],
        "asg-node-0",
        &first_machine,
        &["--control-plane", &other_members.join(",")],
    );
    eventually("the node registered and ready", Duration::from_secs(30), || async {
        let nodes = json_of(&members.fjord_at(&urls, &["nodes", "--json"]))?;
        nodes.as_array()?.iter().any(|n| n["state"] == "ready").then_some(())
    })
    .await;
    // A cooldown long enough that no leader decides a second scale-out during the test: only
    // finishing the committed one can raise the desired capacity.
    apply_policy_with_cooldown(&|args| members.fjord_at(&urls, args), members.dir.path(), 6, 120_000);

    // Two instances fit on the node, four wait: 1600 MiB, two more nodes' worth: desired 3.
    let spec = members.dir.path().join("work.yaml");
    let yaml = format!(
        "name: work\ncommand: [{:?}]\nmin: 6\nmax: 6\n{FUNCTION_YAML_SIZES}",
        bin("fjord-sleep").display().to_string()
    );
    std::fs::write(&spec, yaml).unwrap();
    let out = members.fjord_at(&urls, &["deploy", "-f", spec.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // The leader commits the scale-out and exits before asking AWS.
    let (crashed, exit) = eventually(
        "the leader to exit after committing a scale-out",
        Duration::from_secs(60),
        || {
            let exited = members
                .daemons
                .iter_mut()
                .find_map(|(id, daemon)| Some((*id, daemon.child.try_wait().ok()??)));
            async move { exited }
        },
    )
    .await;
    let crashed_log = members.daemons[&crashed].log_text();
    assert_eq!(exit.code(), Some(86), "the crash hook's status; log:\n{crashed_log}");
    assert!(
        crashed_log.contains("exiting after committing a scale-out"),
        "{crashed_log}"
    );
    members.kill(crashed);
    let new_leader = eventually("a new leader", Duration::from_secs(30), || async {
        members.leader_seen_by_others(Some(crashed)).filter(|l| *l != crashed)
    })
    .await;
    let fjord = |args: &[&str]| members.fjord_at(&urls, args);
    let committed = scale_outs(&actions_of(&workers_group(&fjord).expect("the group")));
    assert_eq!(committed, vec![3], "one scale-out committed, to 3");

    // The new leader finds AWS at 1 and raises it to the committed 3, then holds there while the
    // machines join: over six ticks of its autoscaler, nothing is asked again.
    eventually(
        "the desired capacity in AWS to reach 3",
        Duration::from_secs(60),
        || async {
            let group = cloud.read().await?;
            (group.desired == 3).then_some(())
        },
    )
    .await;
    let mut statuses = BTreeSet::new();
    eventually(
        "six ticks of the new leader's autoscaler",
        Duration::from_secs(60),
        || {
            let status = workers_group(&fjord).map(|g| status_of(&g)).unwrap_or_default();
            if !status.is_empty() && status != "not looked at yet" {
                statuses.insert(status);
            }
            let (cloud, ticks) = (&cloud, statuses.len());
            async move {
                let group = cloud.read().await?;
                assert_eq!(group.desired, 3, "the desired capacity moved: {group:?}");
                (ticks >= 6).then_some(())
            }
        },
    )
    .await;
    let group = workers_group(&fjord).expect("the group");
    assert_eq!(
        scale_outs(&actions_of(&group)),
        vec![3],
        "the new leader finished the scale-out instead of committing another: {group}"
    );
    assert!(
        cloud.max_desired_seen() <= 3,
        "saw desired {}",
        cloud.max_desired_seen()
    );
    let log = members.daemons[&new_leader].log_text();
    let finished: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("finishing a committed scale-out"))
        .collect();
    assert_eq!(finished.len(), 1, "asked AWS once: {finished:#?}");
    assert!(
        finished[0].contains("the provider is at 1 nodes, asking for 3"),
        "found AWS at 1, asked for 3: {}",
        finished[0]
    );
    eprintln!(
        "crash after commit: member {crashed} exited after committing `scale out to 3`; member {new_leader} \
         finished it (AWS desired 1 -> 3) and held over {} ticks; last status: {}",
        statuses.len(),
        status_of(&group)
    );
}
