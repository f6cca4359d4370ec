//! Lease leader election on a private control plane: one leader at a time, takeover after a
//! kill (once the Lease expires) and at once after a clean release; the same with two
//! `spiderpool-controller` processes and `kill -9`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use spiderpool_controller::leader::{self, Args, LEASE_NAME};
use spiderpool_controller::{Ctx, Result};
use spiderpool_k8s::testing::{PrivateControlPlane, TestCluster};

/// Who runs leader-only work right now, and the most that ever ran at once.
#[derive(Default)]
struct Board {
    running: AtomicUsize,
    max_running: AtomicUsize,
    current: Mutex<Option<String>>,
}

/// Counts a running work until dropped (the election drops the work's future on loss).
struct Running(Arc<Board>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
        *self.0.current.lock().unwrap() = None;
    }
}

fn args(namespace: &str, identity: &str) -> Args {
    Args {
        namespace: Some(namespace.to_owned()),
        identity: Some(identity.to_owned()),
        duration: Duration::from_secs(4),
        renew_deadline: Duration::from_secs(3),
        retry_period: Duration::from_millis(300),
        retry_gap: Duration::from_millis(100),
    }
}

async fn elect(
    plane_kubeconfig: &std::path::Path,
    args: Args,
    board: Arc<Board>,
) -> (Ctx, tokio::task::JoinHandle<Result<()>>) {
    let client = spiderpool_k8s::client::connect(Some(plane_kubeconfig))
        .await
        .unwrap();
    let ctx = Ctx::new(client);
    let identity = args.identity.clone().unwrap();
    let task = tokio::spawn(leader::run_while_leader(ctx.clone(), args, move || {
        let board = board.clone();
        let identity = identity.clone();
        async move {
            let now = board.running.fetch_add(1, Ordering::SeqCst) + 1;
            board.max_running.fetch_max(now, Ordering::SeqCst);
            *board.current.lock().unwrap() = Some(identity);
            let _running = Running(board.clone());
            std::future::pending::<()>().await;
            Ok(())
        }
    }));
    (ctx, task)
}

/// Waits until `pred` holds for the board's current worker, up to `limit`.
async fn wait_worker(board: &Board, limit: Duration, pred: impl Fn(Option<&str>) -> bool) {
    let start = Instant::now();
    loop {
        if pred(board.current.lock().unwrap().as_deref()) {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "worker still {:?} after {limit:?}",
            board.current.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn holder(api: &Api<Lease>) -> Option<String> {
    api.get_opt(LEASE_NAME)
        .await
        .unwrap()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
}

#[test]
#[ignore = "needs apiserver"]
fn leader_one_at_a_time_takeover_after_kill_and_release() {
    let plane = PrivateControlPlane::start().expect("private control plane");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let cluster = TestCluster::on(&plane, "leader").await.unwrap();
        let ns = cluster.namespace.clone();
        let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), &ns);
        let board = Arc::new(Board::default());

        let (_ctx_a, task_a) = elect(&plane.kubeconfig, args(&ns, "a"), board.clone()).await;
        let (ctx_b, task_b) = elect(&plane.kubeconfig, args(&ns, "b"), board.clone()).await;
        wait_worker(&board, Duration::from_secs(10), |w| w.is_some()).await;
        // Both keep competing for a while: the work never runs twice.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let first = board.current.lock().unwrap().clone().unwrap();
        assert_eq!(holder(&leases).await.as_deref(), Some(first.as_str()));
        assert!(ctx_b.health.leader_known.load(Ordering::SeqCst));
        assert_eq!(
            ctx_b.health.is_leader.load(Ordering::SeqCst),
            first == "b",
            "is_leader follows the Lease"
        );

        // Kill the leader (its future is dropped, nothing released): the other waits for
        // the Lease to expire (4 s after the last renewal, at most 0.3 s before the kill).
        let (killed, survivor_task) = if first == "a" {
            (task_a, task_b)
        } else {
            (task_b, task_a)
        };
        killed.abort();
        let _ = killed.await;
        let killed_at = Instant::now();
        wait_worker(&board, Duration::from_secs(15), |w| {
            w.is_some_and(|w| w != first)
        })
        .await;
        let takeover = killed_at.elapsed();
        assert!(
            takeover >= Duration::from_millis(3000),
            "took over after {takeover:?}, before the Lease expired"
        );
        let second = board.current.lock().unwrap().clone().unwrap();
        assert_eq!(holder(&leases).await.as_deref(), Some(second.as_str()));
        let transitions = leases
            .get(LEASE_NAME)
            .await
            .unwrap()
            .spec
            .unwrap()
            .lease_transitions;
        assert_eq!(transitions, Some(1), "one change of holder");

        // A third replica joins; the leader stops cleanly and releases: the newcomer takes
        // over at its next retry, long before the Lease would have expired.
        let (_ctx_c, task_c) = elect(&plane.kubeconfig, args(&ns, "c"), board.clone()).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            board.current.lock().unwrap().as_deref(),
            Some(second.as_str())
        );
        survivor_task.abort();
        let _ = survivor_task.await;
        let released_at = Instant::now();
        let second_args = args(&ns, &second);
        let second_client = spiderpool_k8s::client::connect(Some(&plane.kubeconfig))
            .await
            .unwrap();
        leader::release(&Ctx::new(second_client), &second_args).await;
        wait_worker(&board, Duration::from_secs(15), |w| w == Some("c")).await;
        let takeover = released_at.elapsed();
        assert!(
            takeover < Duration::from_millis(2500),
            "took over after {takeover:?}: the release did not hand the Lease over"
        );
        assert_eq!(holder(&leases).await.as_deref(), Some("c"));
        assert_eq!(
            board.max_running.load(Ordering::SeqCst),
            1,
            "leader-only work never ran twice at once"
        );
        task_c.abort();
    });
}

#[test]
fn leader_rejects_timings_that_do_not_nest() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // Checked before any request: the client points nowhere.
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let client = kube::Client::try_from(config).unwrap();
        let mut bad = args("default", "x");
        bad.renew_deadline = Duration::from_secs(5);
        let err = leader::run_while_leader(Ctx::new(client.clone()), bad, || async { Ok(()) })
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("SPIDERPOOL_LEADER_RENEW_DEADLINE"),
            "{err}"
        );
        let mut bad = args("default", "x");
        bad.retry_period = Duration::from_secs(3);
        let err = leader::run_while_leader(Ctx::new(client), bad, || async { Ok(()) })
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("SPIDERPOOL_LEADER_RETRY_PERIOD"),
            "{err}"
        );
    });
}

/// A Lease whose `renewTime` is long past (a holder that died, or whose clock lags) is taken
/// only after this replica has itself seen it unchanged for the lease duration: a replica
/// whose clock runs ahead must not steal a live Lease.
#[test]
#[ignore = "needs apiserver"]
fn leader_takes_a_stale_lease_only_after_seeing_it_unchanged_for_the_duration() {
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
    use k8s_openapi::jiff::{SignedDuration, Timestamp};
    use kube::api::PostParams;

    let plane = PrivateControlPlane::start().expect("private control plane");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let cluster = TestCluster::on(&plane, "leader-stale").await.unwrap();
        let ns = cluster.namespace.clone();
        let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), &ns);
        let long_ago = MicroTime(
            Timestamp::now()
                .checked_sub(SignedDuration::from_hours(1))
                .unwrap(),
        );
        let stale = Lease {
            metadata: ObjectMeta {
                name: Some(LEASE_NAME.to_owned()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some("ghost".to_owned()),
                lease_duration_seconds: Some(4),
                acquire_time: Some(long_ago.clone()),
                renew_time: Some(long_ago),
                ..LeaseSpec::default()
            }),
        };
        leases.create(&PostParams::default(), &stale).await.unwrap();

        let board = Arc::new(Board::default());
        let started = Instant::now();
        let (ctx, task) = elect(&plane.kubeconfig, args(&ns, "a"), board.clone()).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(
            board.current.lock().unwrap().as_deref(),
            None,
            "took a Lease it had not watched for its duration"
        );
        assert!(ctx.health.leader_known.load(Ordering::SeqCst));
        assert_eq!(holder(&leases).await.as_deref(), Some("ghost"));
        wait_worker(&board, Duration::from_secs(15), |w| w == Some("a")).await;
        assert!(started.elapsed() >= Duration::from_secs(3));
        assert_eq!(holder(&leases).await.as_deref(), Some("a"));
        task.abort();
    });
}

/// The leader whose renewals fail (the apiserver is gone) stops its work once the renew
/// deadline has passed, before the Lease could expire for anyone else.
#[test]
#[ignore = "needs apiserver"]
fn leader_gives_up_when_renewals_fail_past_the_renew_deadline() {
    let plane = PrivateControlPlane::start().expect("private control plane");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let cluster = TestCluster::on(&plane, "leader-deadline").await.unwrap();
        let ns = cluster.namespace.clone();
        let board = Arc::new(Board::default());
        let (ctx, task) = elect(&plane.kubeconfig, args(&ns, "a"), board.clone()).await;
        wait_worker(&board, Duration::from_secs(10), |w| w == Some("a")).await;
        assert!(ctx.health.is_leader.load(Ordering::SeqCst));

        // Stop the apiserver (in the background: stopping takes a while) and note when it
        // stops answering: every renewal fails from then on.
        let stopping = tokio::task::spawn_blocking(move || drop(plane));
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> =
            Api::all(cluster.client.clone());
        while namespaces.get_opt(&ns).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let dead = Instant::now();
        assert_eq!(board.current.lock().unwrap().as_deref(), Some("a"));
        wait_worker(&board, Duration::from_secs(15), |w| w.is_none()).await;
        let gave_up = dead.elapsed();
        eprintln!("gave up {gave_up:?} after the apiserver stopped");
        // The renew deadline is 3 s after the last renewal. When the apiserver stopped taking
        // renewals is only known from outside (reads may still be answered while it shuts
        // down; CI once saw 1.95 s), so this only tells "kept leading through failed
        // renewals" from "gave up at the first failure" (which comes within one 0.3 s retry
        // period).
        assert!(
            gave_up >= Duration::from_millis(1000),
            "gave up {gave_up:?} after the apiserver stopped, before the renew deadline"
        );
        stopping.await.unwrap();
        assert!(!ctx.health.is_leader.load(Ordering::SeqCst));
        assert!(!ctx.health.leader_known.load(Ordering::SeqCst));
        task.abort();
    });
}
