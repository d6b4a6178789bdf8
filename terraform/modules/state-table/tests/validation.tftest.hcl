mock_provider "aws" {}

run "defaults_plan" {
  command = plan
  assert {
    condition     = aws_dynamodb_table.state.hash_key == "pk" && aws_dynamodb_table.state.range_key == "sk"
    error_message = "the table is keyed pk/sk as the store expects"
  }
  assert {
    condition     = one(aws_dynamodb_table.state.global_secondary_index).name == "by_agent"
    error_message = "the store queries the by_agent index"
  }
  assert {
    condition     = one(aws_dynamodb_table.state.ttl).attribute_name == "ttl"
    error_message = "TTL is on the ttl attribute"
  }
}

run "a_bad_table_name_is_refused" {
  command = plan
  variables {
    name = "no spaces allowed"
  }
  expect_failures = [var.name]
}
