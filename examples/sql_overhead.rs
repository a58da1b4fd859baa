//! Where the time of one SQL vector query goes (parse / plan / optimize+physical / run).
use datafusion::physical_plan::collect;
use std::time::Instant;
use vecfusion::{VecfusionContext, new_session_context};

#[tokio::main]
async fn main() -> datafusion::error::Result<()> {
    let dir = std::env::args().nth(1).expect("dataset dir");
    let ctx = new_session_context();
    ctx.vf_sql(&format!(
        "CREATE EXTERNAL TABLE t STORED AS VECFUSION LOCATION '{dir}'"
    ))
    .await?
    .collect()
    .await?;
    let q: Vec<String> = (0..128)
        .map(|i| format!("{:?}", (i as f32) * 0.37))
        .collect();
    let sql = format!(
        "SELECT id FROM t ORDER BY l2_distance(embedding, [{}]) LIMIT 10",
        q.join(",")
    );
    for round in 0..30 {
        let t0 = Instant::now();
        let stmt = ctx.vf_parse(&sql)?.remove(0);
        let t1 = Instant::now();
        let vecfusion::sql::VfStatement::DataFusion(s) = stmt else {
            panic!()
        };
        let plan = ctx.state().statement_to_plan(*s).await?;
        let t2 = Instant::now();
        let df = ctx.execute_logical_plan(plan).await?;
        let phys = df.create_physical_plan().await?;
        let t3 = Instant::now();
        collect(phys, ctx.task_ctx()).await?;
        let t4 = Instant::now();
        if round >= 25 {
            println!(
                "parse {:?} plan {:?} optimize+physical {:?} run {:?}",
                t1 - t0,
                t2 - t1,
                t3 - t2,
                t4 - t3
            );
        }
    }
    Ok(())
}
