package caclient

// InferReason is inferReason, for table tests.
var InferReason = inferReason
