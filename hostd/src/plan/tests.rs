//! The planner shape and the apply driver on a toy subsystem: bridges with an MTU, kept in a
//! fake "kernel" that refuses anything inconsistent, so a rollback that undid the wrong thing
//! fails loudly.

use std::collections::{BTreeMap, BTreeSet};

use super::*;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Bridge {
    name: String,
    mtu: u32,
}

fn bridge(name: &str, mtu: u32) -> Bridge {
    Bridge {
        name: name.to_string(),
        mtu,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum BridgeAction {
    Create(Bridge),
    SetMtu {
        name: String,
        from: u32,
        to: u32,
    },
    Delete(Bridge),
    /// Leaves nothing to undo.
    CheckCarrier(String),
    /// Cannot be undone.
    FlashFirmware(String),
}

impl fmt::Display for BridgeAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Create(b) => write!(f, "create bridge {} (mtu {})", b.name, b.mtu),
            Self::SetMtu { name, from, to } => write!(f, "set mtu of {name} from {from} to {to}"),
            Self::Delete(b) => write!(f, "delete bridge {} (mtu {})", b.name, b.mtu),
            Self::CheckCarrier(name) => write!(f, "check carrier of {name}"),
            Self::FlashFirmware(name) => write!(f, "flash firmware of {name}"),
        }
    }
}

impl Action for BridgeAction {
    fn undo(&self) -> Undo<Self> {
        match self {
            Self::Create(b) => Undo::Run(Self::Delete(b.clone())),
            Self::Delete(b) => Undo::Run(Self::Create(b.clone())),
            Self::SetMtu { name, from, to } => Undo::Run(Self::SetMtu {
                name: name.clone(),
                from: *to,
                to: *from,
            }),
            Self::CheckCarrier(_) => Undo::Nothing,
            Self::FlashFirmware(_) => Undo::Impossible("the old firmware is gone".to_string()),
        }
    }
}

/// A made-up subsystem's planner, in the shape of the real ones.
struct BridgePlanner;

impl BridgePlanner {
    /// Tear down before building (a removed bridge may free a name a new one takes), then
    /// change, then create.
    fn plan(&self, desired: &[Bridge], observed: &[Bridge]) -> Vec<BridgeAction> {
        let diff = diff_by_key(desired, observed, |b| b.name.clone());
        let removals = diff.remove.into_iter().cloned().map(BridgeAction::Delete);
        let changes = diff
            .change
            .into_iter()
            .map(|(seen, want)| BridgeAction::SetMtu {
                name: want.name.clone(),
                from: seen.mtu,
                to: want.mtu,
            });
        let creations = diff.create.into_iter().cloned().map(BridgeAction::Create);
        removals.chain(changes).chain(creations).collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
struct KernelError(String);

/// A fake kernel holding bridges, failing on request and on anything inconsistent.
#[derive(Debug, Default)]
struct FakeKernel {
    bridges: BTreeMap<String, u32>,
    log: Vec<BridgeAction>,
    /// The n-th call (from 0) fails.
    fail_call: Option<usize>,
    /// These actions fail whenever they run.
    fail_actions: Vec<BridgeAction>,
}

impl FakeKernel {
    fn with(bridges: &[Bridge]) -> Self {
        Self {
            bridges: bridges.iter().map(|b| (b.name.clone(), b.mtu)).collect(),
            ..Self::default()
        }
    }

    fn observe(&self) -> Vec<Bridge> {
        self.bridges
            .iter()
            .map(|(name, mtu)| bridge(name, *mtu))
            .collect()
    }
}

impl Executor<BridgeAction> for FakeKernel {
    type Error = KernelError;

    fn execute(&mut self, action: &BridgeAction) -> Result<(), KernelError> {
        let call = self.log.len();
        self.log.push(action.clone());
        if self.fail_call == Some(call) || self.fail_actions.contains(action) {
            return Err(KernelError(format!("injected failure of call {call}")));
        }
        let inconsistent = || KernelError(format!("inconsistent: {action}"));
        match action {
            BridgeAction::Create(b) => {
                if self.bridges.insert(b.name.clone(), b.mtu).is_some() {
                    return Err(inconsistent());
                }
            }
            BridgeAction::Delete(b) => {
                if self.bridges.remove(&b.name) != Some(b.mtu) {
                    return Err(inconsistent());
                }
            }
            BridgeAction::SetMtu { name, from, to } => match self.bridges.get_mut(name) {
                Some(mtu) if *mtu == *from => *mtu = *to,
                _ => return Err(inconsistent()),
            },
            BridgeAction::CheckCarrier(_) | BridgeAction::FlashFirmware(_) => {}
        }
        Ok(())
    }
}

fn observed() -> Vec<Bridge> {
    vec![
        bridge("br0", 1500),
        bridge("br1", 1500),
        bridge("br2", 9000),
    ]
}

fn desired() -> Vec<Bridge> {
    vec![
        bridge("br3", 1500),
        bridge("br0", 9000),
        bridge("br2", 9000),
    ]
}

#[test]
fn plan_removes_then_changes_then_creates() {
    assert_eq!(
        BridgePlanner.plan(&desired(), &observed()),
        vec![
            BridgeAction::Delete(bridge("br1", 1500)),
            BridgeAction::SetMtu {
                name: "br0".to_string(),
                from: 1500,
                to: 9000
            },
            BridgeAction::Create(bridge("br3", 1500)),
        ]
    );
}

#[test]
fn plan_is_empty_when_nothing_differs() {
    let plan = BridgePlanner.plan(&observed(), &observed());
    assert_eq!(plan, vec![]);
    assert_eq!(describe(&plan), "nothing to do\n");
}

#[test]
fn describe_numbers_the_steps() {
    assert_eq!(
        describe(&BridgePlanner.plan(&desired(), &observed())),
        "  1. delete bridge br1 (mtu 1500)\n  2. set mtu of br0 from 1500 to 9000\n  3. create bridge br3 (mtu 1500)\n"
    );
}

#[test]
fn apply_runs_every_step_and_reaches_the_desired_state() {
    let mut kernel = FakeKernel::with(&observed());
    let plan = BridgePlanner.plan(&desired(), &kernel.observe());
    assert_eq!(apply(&plan, &mut kernel), Ok(plan.clone()));
    let mut want = desired();
    want.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(kernel.observe(), want);
    assert_eq!(kernel.log, plan);
    assert_eq!(
        BridgePlanner.plan(&desired(), &kernel.observe()),
        vec![],
        "converged"
    );
}

#[test]
fn a_failure_at_any_step_rolls_back_to_the_state_before() {
    let before = observed();
    let plan = BridgePlanner.plan(&desired(), &before);
    for k in 0..plan.len() {
        let mut kernel = FakeKernel::with(&before);
        kernel.fail_call = Some(k);
        let error = apply(&plan, &mut kernel).expect_err("step k fails");

        let undone: Vec<BridgeAction> = plan[..k]
            .iter()
            .rev()
            .map(|action| match action.undo() {
                Undo::Run(undo) => undo,
                other => panic!("toy plan actions all have an undo, not {other:?}"),
            })
            .collect();
        assert_eq!(
            error,
            ApplyError {
                failed_action: plan[k].clone(),
                cause: KernelError(format!("injected failure of call {k}")),
                rolled_back: undone.clone(),
                rollback_failures: vec![],
            },
            "failure at step {k}"
        );
        assert_eq!(
            kernel.observe(),
            before,
            "failure at step {k} left a change"
        );
        let mut expected_log = plan[..=k].to_vec();
        expected_log.extend(undone);
        assert_eq!(kernel.log, expected_log, "failure at step {k}");
    }
}

#[test]
fn an_undo_that_fails_is_reported_and_the_rest_still_undone() {
    let before = observed();
    let plan = BridgePlanner.plan(&desired(), &before);
    let mut kernel = FakeKernel::with(&before);
    kernel.fail_call = Some(2); // creating br3
    let failing_undo = BridgeAction::SetMtu {
        name: "br0".to_string(),
        from: 9000,
        to: 1500,
    };
    kernel.fail_actions = vec![failing_undo.clone()];
    let error = apply(&plan, &mut kernel).expect_err("step 2 fails");
    assert_eq!(
        error.rolled_back,
        vec![BridgeAction::Create(bridge("br1", 1500))]
    );
    assert_eq!(
        error.rollback_failures,
        vec![RollbackFailure::Failed {
            action: plan[1].clone(),
            undo: failing_undo,
            cause: KernelError("injected failure of call 3".to_string()),
        }]
    );
    assert_eq!(
        error.to_string(),
        "\"create bridge br3 (mtu 1500)\" failed; rollback incomplete: 1 step could not be undone"
    );
    assert_eq!(
        error.rollback_failures[0].to_string(),
        "Undoing \"set mtu of br0 from 1500 to 9000\" with \"set mtu of br0 from 9000 to 1500\" failed"
    );
    // br1 is back; br0 keeps the new MTU, as the error says.
    assert_eq!(
        kernel.observe(),
        vec![
            bridge("br0", 9000),
            bridge("br1", 1500),
            bridge("br2", 9000)
        ]
    );
}

#[test]
fn actions_without_effect_are_skipped_and_irreversible_ones_reported() {
    let plan = vec![
        BridgeAction::FlashFirmware("lan1".to_string()),
        BridgeAction::CheckCarrier("lan1".to_string()),
        BridgeAction::Create(bridge("br5", 1500)),
        BridgeAction::Create(bridge("br5", 1500)), // the kernel refuses a second one
    ];
    let mut kernel = FakeKernel::default();
    let error = apply(&plan, &mut kernel).expect_err("the duplicate create fails");
    assert_eq!(error.failed_action, plan[3]);
    assert_eq!(
        error.cause,
        KernelError("inconsistent: create bridge br5 (mtu 1500)".to_string())
    );
    assert_eq!(
        error.rolled_back,
        vec![BridgeAction::Delete(bridge("br5", 1500))]
    );
    assert_eq!(
        error.rollback_failures,
        vec![RollbackFailure::Impossible {
            action: plan[0].clone(),
            why: "the old firmware is gone".to_string(),
        }]
    );
    assert_eq!(
        error.rollback_failures[0].to_string(),
        "\"flash firmware of lan1\" cannot be undone: the old firmware is gone"
    );
    assert_eq!(kernel.observe(), vec![]);
}

#[test]
fn a_clean_rollback_says_how_many_steps_it_undid() {
    let plan = vec![BridgeAction::Create(bridge("br0", 1500))];
    let mut kernel = FakeKernel {
        fail_call: Some(0),
        ..FakeKernel::default()
    };
    let error = apply(&plan, &mut kernel).expect_err("fails");
    assert_eq!(
        error.to_string(),
        "\"create bridge br0 (mtu 1500)\" failed; rolled back (0 undo steps)"
    );
}

#[test]
fn diff_by_key_keeps_input_order_and_counts_a_key_once() {
    let desired = vec![
        bridge("b", 1),
        bridge("a", 2),
        bridge("a", 3),
        bridge("c", 1),
    ];
    let observed = vec![
        bridge("z", 1),
        bridge("c", 1),
        bridge("a", 1),
        bridge("z", 2),
        bridge("y", 1),
    ];
    let diff = diff_by_key(&desired, &observed, |b| b.name.clone());
    assert_eq!(diff.create, vec![&desired[0]]);
    assert_eq!(diff.change, vec![(&observed[2], &desired[1])]);
    assert_eq!(diff.remove, vec![&observed[0], &observed[4]]);
}

/// What differs between two keyed collections, the start of most plans.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Diff<'a, T> {
    /// Desired, not observed: in desired order.
    create: Vec<&'a T>,
    /// Observed and desired under one key but different: `(observed, desired)`, in desired
    /// order.
    change: Vec<(&'a T, &'a T)>,
    /// Observed, not desired: in observed order.
    remove: Vec<&'a T>,
}

/// Compares `desired` with `observed`, matching items by `key`. Items equal in both are left
/// out. A key that appears twice in one list counts once (its first item): validation keeps
/// desired keys unique, and an observer reports each object once.
fn diff_by_key<'a, T, K>(desired: &'a [T], observed: &'a [T], key: impl Fn(&T) -> K) -> Diff<'a, T>
where
    T: PartialEq,
    K: Ord,
{
    let mut observed_by_key: BTreeMap<K, &T> = BTreeMap::new();
    for item in observed {
        observed_by_key.entry(key(item)).or_insert(item);
    }
    let mut desired_keys = BTreeSet::new();
    let mut create = Vec::new();
    let mut change = Vec::new();
    for item in desired {
        let item_key = key(item);
        if desired_keys.contains(&item_key) {
            continue;
        }
        match observed_by_key.get(&item_key) {
            None => create.push(item),
            Some(seen) if *seen != item => change.push((*seen, item)),
            Some(_) => {}
        }
        desired_keys.insert(item_key);
    }
    let mut removed_keys = BTreeSet::new();
    let mut remove = Vec::new();
    for item in observed {
        let item_key = key(item);
        if !desired_keys.contains(&item_key) && removed_keys.insert(item_key) {
            remove.push(item);
        }
    }
    Diff {
        create,
        change,
        remove,
    }
}
