//! The cold-start baseline: a hello-world `lambda_http` function, built with the same profile
//! as the real ones and booted by the same harness in the same run (`make bench-init`).

use lambda_http::{service_fn, Body, Error, Request, Response};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::run(service_fn(|_: Request| async {
        Ok::<_, Error>(Response::new(Body::from("hello")))
    }))
    .await
}
