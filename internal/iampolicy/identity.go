package iampolicy

// ParseIdentityPolicy parses a policy attached to an identity (an inline
// policy given to PutRolePolicy, or a managed policy) as Parse does,
// then applies the rules IAM adds for identity policies, which it answers
// with MalformedPolicyDocument:
//   - no statement names a principal with "Principal" or "NotPrincipal"
//     (AWS: "Policy document should not specify a principal."): the
//     principal of an identity policy is the identity it is attached to;
//   - every statement names what it covers with "Resource" or
//     "NotResource" (AWS: "Policy statement must contain resources.").
//
// The error names the statement (1-based) and quotes AWS's words.
func ParseIdentityPolicy(doc []byte) (*Policy, error) {
	p, err := Parse(doc)
	if err != nil {
		return nil, err
	}
	for i := range p.statements {
		s := &p.statements[i]
		e := stmtError(s.index)
		switch {
		case s.principal != nil:
			return nil, e.errorf(`Policy document should not specify a principal: an identity policy applies to the identity it is attached to; remove "Principal" or "NotPrincipal"`)
		case s.resources == nil:
			return nil, e.errorf(`Policy statement must contain resources: name them with "Resource", as in "Resource": "*"`)
		}
	}
	return p, nil
}
