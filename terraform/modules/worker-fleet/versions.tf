terraform {
  required_version = ">= 1.9" # validation blocks that compare two variables
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0, < 7.0"
    }
  }
}
