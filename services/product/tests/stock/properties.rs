//! Property test: random sequences of reserve / commit / release / restock / expire / adjust,
//! driven through the store-level steps (`stock::ops`) on one database, keep every SKU's stock
//! consistent after every step.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use mercato_product::stock::domain::{Line, ReserveRequest};
use mercato_product::stock::error::StockError;
use mercato_product::stock::ops::{self, Adjustment, OpContext};
use mercato_product::testing::TestEnv;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::*;

const SKUS: usize = 3;
const ORDERS: usize = 6;

#[derive(Debug, Clone)]
enum Op {
    Reserve {
        order: usize,
        lines: Vec<(usize, i64)>,
        ttl_minutes: u64,
    },
    Commit {
        order: usize,
    },
    Release {
        order: usize,
    },
    Restock {
        order: usize,
    },
    Expire {
        advance_minutes: i64,
    },
    Adjust {
        sku: usize,
        on_hand: i64,
    },
}

impl Op {
    fn name(&self) -> &'static str {
        match self {
            Self::Reserve { .. } => "reserve",
            Self::Commit { .. } => "commit",
            Self::Release { .. } => "release",
            Self::Restock { .. } => "restock",
            Self::Expire { .. } => "expire",
            Self::Adjust { .. } => "adjust",
        }
    }
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..ORDERS, prop::collection::vec((0..SKUS, 1..6_i64), 1..4), 1..5_u64)
            .prop_map(|(order, lines, ttl_minutes)| Op::Reserve { order, lines, ttl_minutes }),
        2 => (0..ORDERS).prop_map(|order| Op::Commit { order }),
        2 => (0..ORDERS).prop_map(|order| Op::Release { order }),
        1 => (0..ORDERS).prop_map(|order| Op::Restock { order }),
        1 => (0..4_i64).prop_map(|advance_minutes| Op::Expire { advance_minutes }),
        2 => (0..SKUS, 0..20_i64).prop_map(|(sku, on_hand)| Op::Adjust { sku, on_hand }),
    ]
}

/// Errors the rules produce on purpose; anything else fails the property.
fn expected(err: &StockError) -> bool {
    matches!(
        err,
        StockError::InsufficientStock(_)
            | StockError::ReservationConflict(_)
            | StockError::ReservationExpired(_)
            | StockError::IllegalTransition { .. }
            | StockError::NotFound { .. }
            | StockError::StockBelowReserved(_)
    )
}

struct Case {
    pool: PgPool,
    skus: Vec<Uuid>,
    orders: Vec<Uuid>,
    initial: Vec<i64>,
    adjusted: HashMap<Uuid, i64>,
    now: DateTime<Utc>,
}

impl Case {
    fn op(&self) -> OpContext {
        OpContext {
            now: self.now,
            low_stock_threshold: 2,
        }
    }

    async fn apply(&mut self, op: &Op) -> Result<(), StockError> {
        let mut tx = self.pool.begin().await?;
        let context = self.op();
        let result = match op {
            Op::Reserve {
                order,
                lines,
                ttl_minutes,
            } => {
                let mut merged: HashMap<Uuid, i64> = HashMap::new();
                for (sku, quantity) in lines {
                    *merged.entry(self.skus[*sku]).or_default() += quantity;
                }
                let mut lines: Vec<Line> = merged
                    .into_iter()
                    .map(|(sku_id, quantity)| Line { sku_id, quantity })
                    .collect();
                lines.sort_by_key(|l| l.sku_id);
                let request = ReserveRequest {
                    order_id: self.orders[*order],
                    lines,
                    ttl: std::time::Duration::from_secs(ttl_minutes * 60),
                };
                ops::reserve(&mut tx, &request, context).await.map(drop)
            }
            Op::Commit { order } => ops::commit(&mut tx, self.orders[*order], context)
                .await
                .map(drop),
            Op::Release { order } => ops::release(&mut tx, self.orders[*order], "", context)
                .await
                .map(drop),
            Op::Restock { order } => ops::restock(&mut tx, self.orders[*order], "", context)
                .await
                .map(drop),
            Op::Expire { advance_minutes } => {
                self.now += Duration::minutes(*advance_minutes);
                ops::expire_batch(&mut tx, 2, self.op()).await.map(drop)
            }
            Op::Adjust { sku, on_hand } => {
                let sku_id = self.skus[*sku];
                let version: i64 =
                    sqlx::query_scalar("SELECT version FROM stock_levels WHERE sku_id = $1")
                        .bind(sku_id)
                        .fetch_one(&mut *tx)
                        .await?;
                let adjustment = Adjustment {
                    sku_id,
                    on_hand: *on_hand,
                    expected_version: version,
                    reason: "count",
                    actor_id: Uuid::nil(),
                    required_owner: None,
                };
                ops::adjust(&mut tx, &adjustment, context)
                    .await
                    .map(|(_, entry)| {
                        *self.adjusted.entry(sku_id).or_default() +=
                            entry.on_hand_after - entry.on_hand_before;
                    })
            }
        };
        match result {
            Ok(()) => tx.commit().await.map_err(StockError::from),
            Err(err) => {
                tx.rollback().await?;
                Err(err)
            }
        }
    }

    async fn check(&self) -> Result<(), String> {
        for (index, sku) in self.skus.iter().enumerate() {
            let (on_hand, reserved): (i64, i64) =
                sqlx::query_as("SELECT on_hand, reserved FROM stock_levels WHERE sku_id = $1")
                    .bind(sku)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(|e| e.to_string())?;
            let (pending, committed): (i64, i64) = sqlx::query_as(
                "SELECT coalesce(sum(l.quantity) FILTER (WHERE r.status = 'PENDING'), 0)::bigint,
                        coalesce(sum(l.quantity) FILTER (WHERE r.status = 'COMMITTED'), 0)::bigint
                   FROM reservation_lines l JOIN reservations r ON r.id = l.reservation_id
                  WHERE l.sku_id = $1",
            )
            .bind(sku)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| e.to_string())?;
            let adjusted = self.adjusted.get(sku).copied().unwrap_or(0);
            if !(on_hand >= reserved && reserved >= 0) {
                return Err(format!(
                    "sku {index}: on_hand {on_hand} reserved {reserved}"
                ));
            }
            if reserved != pending {
                return Err(format!(
                    "sku {index}: reserved {reserved} != pending {pending}"
                ));
            }
            // Returned reservations put their committed units back, so only COMMITTED ones count.
            let expected = self.initial[index] + adjusted - committed;
            if on_hand != expected {
                return Err(format!("sku {index}: on_hand {on_hand} != {expected}"));
            }
        }
        Ok(())
    }
}

#[test]
fn random_operations_keep_stock_consistent() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let env = runtime.block_on(TestEnv::new()).expect("test resources");
    let pool = env.database().pool().clone();
    let mut runner = TestRunner::new(Config {
        cases: 32,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        prop::collection::vec(0..12_i64, SKUS),
        prop::collection::vec(op(), 40),
    );
    // Successful steps per kind over all cases, to show the sequences reach every transition.
    let successes = std::cell::RefCell::new(HashMap::<&'static str, usize>::new());
    let result = runner.run(&strategy, |(initial, ops)| {
        runtime.block_on(async {
            let product = published(&pool, &initial).await;
            let mut case = Case {
                pool: pool.clone(),
                skus: product.skus,
                orders: (0..ORDERS).map(|_| Uuid::now_v7()).collect(),
                initial,
                adjusted: HashMap::new(),
                now: Utc::now(),
            };
            for (step, op) in ops.iter().enumerate() {
                match case.apply(op).await {
                    Ok(()) => *successes.borrow_mut().entry(op.name()).or_default() += 1,
                    Err(err) if expected(&err) => {}
                    Err(err) => {
                        return Err(TestCaseError::fail(format!("step {step} {op:?}: {err:?}")));
                    }
                }
                case.check()
                    .await
                    .map_err(|e| TestCaseError::fail(format!("after step {step} {op:?}: {e}")))?;
            }
            Ok(())
        })
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
    let successes = successes.into_inner();
    for kind in [
        "reserve", "commit", "release", "restock", "expire", "adjust",
    ] {
        assert!(
            successes.get(kind).copied().unwrap_or(0) > 0,
            "no {kind} step ever succeeded: {successes:?}"
        );
    }
}
