// Command sdkclient is a job's AWS program built with the AWS SDK for Go
// v2, as the Terraform AWS provider is: it takes credentials from the
// SDK's default chain (in a job container, the container-credentials
// provider reading AWS_CONTAINER_CREDENTIALS_FULL_URI and
// AWS_CONTAINER_AUTHORIZATION_TOKEN), calls STS GetCallerIdentity at the
// endpoint given by -endpoint, and prints the caller's ARN. The interop
// tests build it statically (CGO_ENABLED=0) into a FROM-scratch image; it
// is not part of keyless.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

func main() {
	endpoint := flag.String("endpoint", "", "STS endpoint URL")
	region := flag.String("region", "us-east-1", "region, when AWS_REGION is not set")
	flag.Parse()
	if *endpoint == "" {
		fmt.Fprintln(os.Stderr, "sdkclient: no STS endpoint: pass -endpoint")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	opts := []func(*config.LoadOptions) error{}
	if os.Getenv("AWS_REGION") == "" && os.Getenv("AWS_DEFAULT_REGION") == "" {
		opts = append(opts, config.WithRegion(*region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		fmt.Fprintf(os.Stderr, "sdkclient: loading the SDK's configuration: %v\n", err)
		os.Exit(1)
	}
	out, err := sts.NewFromConfig(cfg, func(o *sts.Options) { o.BaseEndpoint = aws.String(*endpoint) }).
		GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		fmt.Fprintf(os.Stderr, "sdkclient: GetCallerIdentity: %v\n", err)
		os.Exit(1)
	}
	fmt.Println(aws.ToString(out.Arn))
}
