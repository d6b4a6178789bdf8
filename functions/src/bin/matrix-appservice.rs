//! Lambda function for `PUT /_matrix/app/v1/transactions/{txnId}` (a Matrix homeserver's
//! application service transactions, `provided.al2023`); the shared Router does the work.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    functions::lambda::run().await
}
