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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_partitioned_leader_cannot_commit_and_converges_after_healing() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::default();
    let listeners: Vec<tokio::net::TcpListener> =
        futures::future::join_all((0..3).map(|_| tokio::net::TcpListener::bind("127.0.0.1:0")))
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
            dir.path().join(format!("member-{id}")).display().to_string(),
        ];
        if id == 1 {
            argv.push("--bootstrap".into());
            argv.push("--initial-members".into());
            argv.push(format!("2=127.0.0.1:{},3=127.0.0.1:{}", ports[1], ports[2]));
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
    let port_of = |id: u64| ports[id as usize - 1];

    let leader = eventually("a leader", || async { status(ports[0]).await?.leader_id }).await;
    let before = client(port_of(leader))
        .await
        .deploy(authed(pb::DeployRequest {
            spec: Some(spec("before")),
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
        .list_functions(authed(pb::ListFunctionsRequest {}))
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
