"""The ``kubernetes`` node provider against the API emulator with the operator running and
real solray nodes behind the Pods: scaling up sets a worker group's replicas, scaling down
drains a node and names its Pod in workersToDelete, and the operator makes or removes
exactly those Pods."""

from __future__ import annotations

import os
import sys

import pytest
from helpers import wait_for

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "kubernetes")))
from helm_tools import kubeconfig  # noqa: E402
from k8s_objects import manifest  # noqa: E402
from kopf.testing import KopfRunner  # noqa: E402
from kube_emulator import KubeEmulator  # noqa: E402

from solray.autoscaler._internal.kubernetes_provider import (  # noqa: E402
    KubernetesNodeProvider,
    config_from_raycluster,
)
from solray.kubernetes._internal.client import KubeClient  # noqa: E402


def test_node_types_from_the_raycluster():
    cluster = manifest("raycluster-two-groups.yaml")
    cluster["spec"]["autoscalerOptions"] = {"idleTimeoutSeconds": 30, "upscalingMode": "Conservative"}
    config = config_from_raycluster(cluster)
    assert config.idle_timeout_s == 30 and config.upscaling_speed == 1.0
    cpu, gpu = config.node_types["cpu"], config.node_types["gpu"]
    assert cpu.resources == {"CPU": 2.0, "Custom1": 1.0} and (cpu.min_workers, cpu.max_workers) == (0, 5)
    assert gpu.resources == {"CPU": 4.0, "GPU": 1.0} and (gpu.min_workers, gpu.max_workers) == (1, 2)
    del cluster["spec"]["autoscalerOptions"]
    assert config_from_raycluster(cluster).upscaling_speed == 1000.0  # Default: not rate-limited


class Kubelet:
    """Runs a real solray node for each running worker Pod of the emulator (at the Pod's
    loopback IP), and stops it when the Pod goes: what the kubelet and the image do."""

    def __init__(self, kube, cluster):
        import threading

        self.kube, self.cluster = kube, cluster
        self.nodes: dict[str, object] = {}  # pod name -> Popen
        self.stopped: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        from solray._private.node import launcher

        while not self._stop.wait(0.1):
            pods = {p["metadata"]["name"]: p for p in self.kube.list("pods", selector="ray.io/node-type=worker")}
            for name, pod in pods.items():
                if name not in self.nodes and pod["status"].get("podIP"):
                    session = launcher.new_session_dir(self.cluster.session_root)
                    proc, _info = launcher.start_node(
                        head=False, token=self.cluster.token, session_dir=session, resources={"CPU": 1.0, "slot": 1.0},
                        object_store_memory=64 * 2**20, node_ip=pod["status"]["podIP"],
                        control_address=self.cluster.address)
                    self.nodes[name] = proc
            for name in [n for n in self.nodes if n not in pods]:
                proc = self.nodes.pop(name)
                proc.terminate()
                proc.wait(15)
                self.stopped.append(name)

    def close(self):
        self._stop.set()
        self._thread.join(30)
        for proc in self.nodes.values():
            proc.kill()
            proc.wait(15)


def test_in_tree_autoscaling_end_to_end(kube_loopback):
    """Demand on a real head -> replicas -> the operator's Pods -> real nodes join -> the work
    runs -> idle nodes drained, named in workersToDelete and removed."""
    from cluster_helpers import start_cluster
    from helpers import Gate, arrive_and_wait

    import solray as ray
    from solray.autoscaler import Monitor

    kube = kube_loopback
    rc = manifest("raycluster-quickstart.yaml")
    for key in ("uid", "generation"):
        rc["metadata"].pop(key)
    rc["metadata"]["name"] = "auto"
    rc["spec"].update(enableInTreeAutoscaling=True, autoscalerOptions={"idleTimeoutSeconds": 1})
    rc["spec"]["workerGroupSpecs"][0].update(replicas=0, minReplicas=0, maxReplicas=2,
                                             rayStartParams={"resources": '"{\\"slot\\": 1}"'})

    @ray.remote(resources={"slot": 1})
    def work(address):
        arrive_and_wait(address)
        return ray.get_runtime_context().get_node_id()

    with start_cluster(head_cpus=1) as cluster, \
            KopfRunner(["run", "--standalone", "-A", "-m", "solray.kubernetes.operator"], timeout=60) as runner:
        kube.create("rayclusters", rc)
        provider = KubernetesNodeProvider("auto", "default", lambda: KubeClient(kube.url))
        kubelet = Kubelet(kube, cluster)
        monitor = Monitor(config_from_raycluster(provider.cluster()), provider, cluster.address, cluster.token,
                          interval_s=0.3).start()
        try:
            with Gate() as gate:
                refs = [work.remote(gate.address) for _ in range(2)]
                gate.wait_arrivals(2, timeout=60)  # both run at once: two worker Pods were made
            assert len(set(ray.get(refs, timeout=30))) == 2
            assert kube.get("rayclusters", "auto")["spec"]["workerGroupSpecs"][0]["replicas"] == 2
            made = set(kubelet.nodes)
            wait_for(lambda: set(kubelet.stopped) == made, 60, "idle worker Pods removed")
            assert kube.list("pods", selector="ray.io/node-type=worker") == []
            group = kube.get("rayclusters", "auto")["spec"]["workerGroupSpecs"][0]
            assert group["replicas"] == 0
            wait_for(lambda: kube.get("rayclusters", "auto")["spec"]["workerGroupSpecs"][0]["scaleStrategy"]["workersToDelete"] == [],
                     30, "workersToDelete cleared by the operator")
        finally:
            monitor.stop()
            kubelet.close()
    assert runner.exception is None


@pytest.fixture
def kube_loopback(tmp_path, monkeypatch):
    """The API emulator, its Pods given loopback IPs that real solray nodes can bind."""
    with KubeEmulator(pod_ip_prefix="127.0.9.") as k:
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path / "kubeconfig", k.url)))
        yield k
