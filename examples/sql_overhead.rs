//! Where the time of one SQL vector query goes (parse / plan / optimize+physical / run),
//! with and without vecfusion's constant planning of the query vector, and through a
//! prepared statement whose kept plan each `EXECUTE` reuses (parse / bind: `vf_execute`,
//! which checks the kept plan and puts the vector in / optimize+physical / run).
//!
//!     cargo run --release --example sql_overhead -- DATASET_DIR [DIM [ROUNDS]]
use datafusion::physical_plan::collect;
use datafusion::prelude::{SessionConfig, SessionContext};
use std::time::{Duration, Instant};
use vecfusion::{VecfusionContext, register_functions, session_state_builder};

fn context(fold_literals: bool) -> SessionContext {
    let mut builder = session_state_builder(SessionConfig::new());
    if !fold_literals {
        // DataFusion's own planning of `[...]`: make_array with one argument per element.
        builder.expr_planners().as_mut().unwrap().remove(0);
    }
    let ctx = SessionContext::new_with_state(builder.build());
    register_functions(&ctx);
    ctx
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() -> datafusion::error::Result<()> {
    let dir = std::env::args().nth(1).expect("dataset dir");
    let dim: usize = std::env::args().nth(2).map_or(128, |d| d.parse().unwrap());
    let rounds: usize = std::env::args().nth(3).map_or(50, |r| r.parse().unwrap());
    let q: Vec<String> = (0..dim)
        .map(|i| format!("{:?}", ((i * 37 % 101) as f32) * 0.01 - 0.5))
        .collect();
    let sql = format!(
        "SELECT id FROM t ORDER BY l2_distance(embedding, [{}]) LIMIT 10",
        q.join(",")
    );
    for fold in [false, true] {
        let ctx = context(fold);
        ctx.vf_sql(&format!(
            "CREATE EXTERNAL TABLE t STORED AS VECFUSION LOCATION '{dir}'"
        ))
        .await?
        .collect()
        .await?;
        let mut phases: [Vec<Duration>; 5] = Default::default();
        for _ in 0..rounds {
            let t0 = Instant::now();
            let stmt = ctx.vf_parse(&sql)?.remove(0);
            let t1 = Instant::now();
            let vecfusion::sql::VfStatement::DataFusion(s) = stmt else {
                panic!("not a DataFusion statement")
            };
            let plan = ctx.state().statement_to_plan(*s).await?;
            let t2 = Instant::now();
            let df = ctx.execute_logical_plan(plan).await?;
            let phys = df.create_physical_plan().await?;
            let t3 = Instant::now();
            collect(phys, ctx.task_ctx()).await?;
            let t4 = Instant::now();
            for (p, d) in phases
                .iter_mut()
                .zip([t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0])
            {
                p.push(d);
            }
        }
        let [parse, plan, optimize, run, total] = phases.map(median);
        println!(
            "{:<28} parse {parse:>10.1?}  plan {plan:>10.1?}  optimize+physical {optimize:>10.1?}  run {run:>10.1?}  total {total:>10.1?}",
            if fold {
                "query vector as a constant"
            } else {
                "make_array (DataFusion)"
            }
        );
    }
    let ctx = context(true);
    ctx.vf_sql(&format!(
        "CREATE EXTERNAL TABLE t STORED AS VECFUSION LOCATION '{dir}'"
    ))
    .await?
    .collect()
    .await?;
    ctx.vf_sql("PREPARE knn AS SELECT id FROM t ORDER BY l2_distance(embedding, $1) LIMIT 10")
        .await?
        .collect()
        .await?;
    let execute = format!("EXECUTE knn([{}])", q.join(","));
    let mut phases: [Vec<Duration>; 5] = Default::default();
    for _ in 0..rounds {
        let t0 = Instant::now();
        let stmt = ctx.vf_parse(&execute)?.remove(0);
        let t1 = Instant::now();
        let df = ctx.vf_execute(stmt).await?;
        let t2 = Instant::now();
        let task = ctx.task_ctx();
        let phys = df.create_physical_plan().await?;
        let t3 = Instant::now();
        collect(phys, task).await?;
        let t4 = Instant::now();
        for (p, d) in phases
            .iter_mut()
            .zip([t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0])
        {
            p.push(d);
        }
    }
    let [parse, bind, optimize, run, total] = phases.map(median);
    println!(
        "{:<28} parse {parse:>10.1?}  bind {bind:>10.1?}  optimize+physical {optimize:>10.1?}  run {run:>10.1?}  total {total:>10.1?}",
        "EXECUTE, plan kept"
    );
    Ok(())
}
