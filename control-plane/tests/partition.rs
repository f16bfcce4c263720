//! A network partition, in one process: three members whose links the test cuts and heals.
//! The leader cut off from the majority cannot commit and says so; the majority elects a new
//! leader and takes writes; after healing, the old leader steps down and converges. No
//! acknowledged write is lost and none is applied twice.

use clap::Parser;
use fjord_control_plane::auth::Token;
use fjord_control_plane::network::Faults;
use fjord_control_plane::{run_with_faults, Args};
use fjord_proto::v1 as pb;
use fjord_proto::v1::admin_client::AdminClient;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

const TOKEN: &str = "partition-test-token-0123456789";

async fn client(port: u16) -> AdminClient<Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .timeout(Duration::from_secs(15))
        .connect_lazy();
    AdminClient::new(channel)
}

fn authed<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    request
}

fn spec(name: &str) -> pb::FunctionSpec {
    let spec = fjord_core::FunctionSpec::with_command(name, vec!["/bin/true".into()]);
    (&spec).into()
}

async fn status(port: u16) -> Option<pb::ClusterStatus> {
    client(port)
        .await
        .status(authed(pb::StatusRequest {}))
        .await
        .ok()
        .map(|r| r.into_inner())
}

async fn eventually<T, F: std::future::Future<Output = Option<T>>>(what: &str, mut check: impl FnMut() -> F) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Starts members `1..=n` in this process; the first `founders` form the cluster, the rest wait
/// to be added. Returns their ports and the senders that stop them.
async fn start_members(
    dir: &std::path::Path,
    n: u64,
    founders: u64,
    faults: &Faults,
) -> (Vec<u16>, Vec<tokio::sync::oneshot::Sender<()>>) {
    let listeners: Vec<tokio::net::TcpListener> =
        futures::future::join_all((0..n).map(|_| tokio::net::TcpListener::bind("127.0.0.1:0")))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
    let ports: Vec<u16> = listeners.iter().map(|l| l.local_addr().unwrap().port()).collect();
    let mut stops = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        let id = i as u64 + 1;
        let mut argv = vec![
            "fjord-control-plane".to_string(),
            "--id".into(),
            id.to_string(),
            "--listen".into(),
            format!("127.0.0.1:{}", ports[i]),
            "--data-dir".into(),
            dir.join(format!("member-{id}")).display().to_string(),
            // Never the default (derived from the gRPC port, which another run may hold).
            "--metrics-listen".into(),
            "off".into(),
        ];
        if id == 1 {
            argv.push("--bootstrap".into());
            let others: Vec<String> = (2..=founders)
                .map(|m| format!("{m}=127.0.0.1:{}", ports[m as usize - 1]))
                .collect();
            if !others.is_empty() {
                argv.push("--initial-members".into());
                argv.push(others.join(","));
            }
        }
        let args = Args::parse_from(argv);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        stops.push(stop_tx);
        let faults = faults.clone();
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = stop_rx.await;
            };
            run_with_faults(args, Token::new(TOKEN).unwrap(), listener, shutdown, faults)
                .await
                .unwrap();
        });
    }
    (ports, stops)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_membership_change_is_refused_while_one_is_in_progress() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::default();
    let (ports, stops) = start_members(dir.path(), 5, 3, &faults).await;
    // Settled: a leader whose first entry, which commits the founding membership, is applied.
    let leader = eventually("a settled leader", || async {
        let s = status(ports[0]).await?;
        (s.applied_index? >= 1).then_some(s.leader_id?)
    })
    .await;
    let leader_port = ports[leader as usize - 1];
    // Members 4 and 5 answer calls but cannot receive Raft messages: a learner never catches up,
    // so the first change stays in progress.
    faults.partition(&[4, 5], &[1, 2, 3]);
    let add = |id: u64| {
        let addr = format!("127.0.0.1:{}", ports[id as usize - 1]);
        tokio::spawn(async move {
            client(leader_port)
                .await
                .add_member(authed(pb::AddMemberRequest { id, addr }))
                .await
        })
    };
    let mut first = add(4);
    let mut second = add(5);
    let (refused, pending) = tokio::select! {
        r = &mut first => (r.unwrap(), second),
        r = &mut second => (r.unwrap(), first),
    };
    let refused = refused.expect_err("two membership changes ran at once");
    assert!(refused.message().contains("in progress"), "{refused:?}");
    faults.heal();
    pending
        .await
        .unwrap()
        .expect("the first change completes once its learner is reachable");
    let members = status(leader_port).await.unwrap().members;
    assert_eq!(members.len(), 4, "{members:?}");
    for stop in stops {
        let _ = stop.send(());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_partitioned_leader_cannot_commit_and_converges_after_healing() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::default();
    let (ports, stops) = start_members(dir.path(), 3, 3, &faults).await;
    let port_of = |id: u64| ports[id as usize - 1];

    let leader = eventually("a leader", || async { status(ports[0]).await?.leader_id }).await;
    let before = client(port_of(leader))
        .await
        .deploy(authed(pb::DeployRequest {
            spec: Some(spec("before")),
            defaulted: Vec::new(),
        }))
        .await
        .unwrap();
    let before_revision = before.into_inner().record.unwrap().revision;

    // Cut the leader off from both followers.
    let others: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    faults.partition(&[leader], &others);
    let started = Instant::now();
    let refused = client(port_of(leader))
        .await
        .deploy(authed(pb::DeployRequest {
            spec: Some(spec("minority")),
            defaulted: Vec::new(),
        }))
        .await;
    let refused = refused.expect_err("the minority side accepted a write");
    assert!(
        refused.message().contains("not confirmed") || refused.message().contains("leader"),
        "unclear error on the minority side: {refused:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "the refusal took {:?}",
        started.elapsed()
    );

    // The majority elects a leader among itself and takes writes.
    let new_leader = eventually("a leader on the majority side", || async {
        let s = status(port_of(others[0])).await?;
        s.leader_id.filter(|l| *l != leader)
    })
    .await;
    let majority = client(port_of(others[1]))
        .await
        .deploy(authed(pb::DeployRequest {
            spec: Some(spec("majority")),
            defaulted: Vec::new(),
        }))
        .await;
    let majority_revision = majority
        .expect("the majority side refused a write")
        .into_inner()
        .record
        .unwrap()
        .revision;

    // Heal: the old leader learns the higher term, steps down and converges.
    faults.heal();
    let target = status(port_of(new_leader)).await.unwrap().applied_index.unwrap();
    eventually("the old leader to step down and catch up", || async {
        let s = status(port_of(leader)).await?;
        (s.leader_id == Some(new_leader) && s.applied_index? >= target && s.functions == 2).then_some(())
    })
    .await;

    // The unconfirmed minority write was never applied; the majority's write is there once.
    let mut c = client(port_of(leader)).await;
    let missing = c
        .get_function(authed(pb::GetFunctionRequest {
            name: "minority".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    let listed = c
        .list_functions(authed(pb::ListFunctionsRequest {
            page_size: 1000,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .functions;
    let mut names: Vec<(String, u64)> = listed
        .iter()
        .map(|f| {
            let r = f.record.clone().unwrap();
            (r.spec.unwrap().name, r.revision)
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            ("before".to_string(), before_revision),
            ("majority".to_string(), majority_revision)
        ]
    );
    assert_eq!(
        majority_revision,
        before_revision + 1,
        "a revision was consumed by a write that never committed"
    );
    for stop in stops {
        let _ = stop.send(());
    }
}
