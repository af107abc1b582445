// Command etcd is etcd's server, built from go.etcd.io/etcd/server/v3 at the version pinned in
// hack/controlplane/versions.env: the same entry point as etcd's own main package.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
