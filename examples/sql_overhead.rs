//! Where the time of one SQL vector query goes (parse / plan / optimize+physical / run),
//! with and without vecfusion's constant planning of the query vector, through a prepared
//! statement whose kept plan each `EXECUTE` reuses (parse / bind: `vf_execute`, which checks
//! the kept plan and puts the vector in / optimize+physical / run), and both as text through
//! `vf_sql`, where the vector is read from the text and the kept plan of the query's shape
//! reused (parse: `vf_sql` whole).
//!
//!     cargo run --release --example sql_overhead -- DATASET_DIR [DIM [ROUNDS]]
use datafusion::physical_plan::collect;
use datafusion::prelude::{SessionConfig, SessionContext};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vecfusion::{VecfusionContext, register_functions, session_state_builder};

// The allocator of vecfusion's programs (the shell, the benchmark), so that the times are theirs.
#[global_allocator]
static GLOBAL: vecfusion::allocator::MiMalloc = vecfusion::allocator::MiMalloc;

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

/// A session with table `t` on `dir`.
async fn table_context(
    fold_literals: bool,
    dir: &str,
) -> datafusion::error::Result<SessionContext> {
    let ctx = context(fold_literals);
    ctx.vf_sql(&format!(
        "CREATE EXTERNAL TABLE t STORED AS VECFUSION LOCATION '{dir}'"
    ))
    .await?
    .collect()
    .await?;
    Ok(ctx)
}

/// The durations of a query's four phases, one entry per round.
#[derive(Default)]
struct Phases([Vec<Duration>; 4]);

impl Phases {
    /// Records one round from the instants at its phase boundaries.
    fn record(&mut self, t: [Instant; 5]) {
        for (i, p) in self.0.iter_mut().enumerate() {
            p.push(t[i + 1] - t[i]);
        }
    }

    /// Prints the median of each phase (the second one named `second`) and of the total.
    fn print(self, label: &str, second: &str) {
        let total = median(
            (0..self.0[0].len())
                .map(|r| self.0.iter().map(|p| p[r]).sum())
                .collect(),
        );
        let [parse, middle, optimize, run] = self.0.map(median);
        println!(
            "{label:<28} parse {parse:>10.1?}  {second} {middle:>10.1?}  optimize+physical {optimize:>10.1?}  run {run:>10.1?}  total {total:>10.1?}"
        );
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() -> datafusion::error::Result<()> {
    vecfusion::allocator::keep_freed_memory();
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
        let ctx = table_context(fold, &dir).await?;
        let mut phases = Phases::default();
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
            phases.record([t0, t1, t2, t3, Instant::now()]);
        }
        let label = if fold {
            "query vector as a constant"
        } else {
            "make_array (DataFusion)"
        };
        phases.print(label, "plan");
    }
    let ctx = table_context(true, &dir).await?;
    ctx.vf_sql("PREPARE knn AS SELECT id FROM t ORDER BY l2_distance(embedding, $1) LIMIT 10")
        .await?
        .collect()
        .await?;
    let execute = format!("EXECUTE knn([{}])", q.join(","));
    let mut phases = Phases::default();
    for _ in 0..rounds {
        let t0 = Instant::now();
        let stmt = ctx.vf_parse(&execute)?.remove(0);
        let t1 = Instant::now();
        let df = ctx.vf_execute(stmt).await?;
        let t2 = Instant::now();
        // The DataFrame's own task context, as `DataFrame::collect` makes it.
        let task = Arc::new(df.task_ctx());
        let phys = df.create_physical_plan().await?;
        let t3 = Instant::now();
        collect(phys, task).await?;
        phases.record([t0, t1, t2, t3, Instant::now()]);
    }
    phases.print("EXECUTE, plan kept", "bind");

    // Through `vf_sql`, as the shell, Python and programs send them: the EXECUTE's vector
    // read from its text, and the query as text reusing the plan kept for its shape.
    for (label, text) in [
        ("EXECUTE text, vf_sql", &execute),
        ("query text, vf_sql", &sql),
    ] {
        let mut phases = Phases::default();
        ctx.vf_sql(text).await?.collect().await?;
        for _ in 0..rounds {
            let t0 = Instant::now();
            let df = ctx.vf_sql(text).await?;
            let t1 = Instant::now();
            let task = Arc::new(df.task_ctx());
            let phys = df.create_physical_plan().await?;
            let t2 = Instant::now();
            collect(phys, task).await?;
            phases.record([t0, t1, t1, t2, Instant::now()]);
        }
        phases.print(label, "bind");
    }
    Ok(())
}
