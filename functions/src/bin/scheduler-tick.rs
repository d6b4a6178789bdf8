//! Lambda function the scheduler invokes every minute (`provided.al2023`): one cron tick.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    functions::tick::run().await
}
