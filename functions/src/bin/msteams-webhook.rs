//! Lambda function for `POST /api/messages` (Microsoft Teams, `provided.al2023`); the shared
//! Router does the work.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    functions::lambda::run().await
}
