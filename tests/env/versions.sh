# Pinned versions of the test control plane, built from the Go module proxy.
# kubectl on the machines is 1.32; 1.33 stays inside kubectl's +-1 version skew.
# etcd 3.5.21+ is what the Kubernetes 1.33 release pairs with (envtest uses 3.5.21).
K8S_VERSION=v1.33.13
ETCD_VERSION=v3.5.23
# Helm is not in Debian; v3.22.0 needs go 1.26 (go.mod), which is what the
# machines have. It renders and lints charts/slipway (tests/t8300-chart.sh).
HELM_VERSION=v3.22.0
