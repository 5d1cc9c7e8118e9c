package release

import "context"

// testBinaries builds keyless for every target of PackageArchs into dir
// with BuildBinaries, as a release does.
func testBinaries(ctx context.Context, p Plan, dir string) (map[Target]string, error) {
	p.Work, p.Only = dir, nil
	for _, a := range PackageArchs {
		p.Only = append(p.Only, a.Target)
	}
	return BuildBinaries(ctx, p)
}
