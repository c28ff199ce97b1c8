# A demo of Nix Builders, runnable offline: every derivation uses /bin/sh as its builder,
# so no nixpkgs is needed. Open the Builders view (activity bar) to see where each can build.
let
  # Writes the builder's identity (first line of its nix.conf) into $out, so you can see where it ran.
  whereAmI = { name, system ? builtins.currentSystem, features ? [ ] }:
    derivation {
      inherit name system;
      builder = "/bin/sh";
      args = [ "-c" "read -r line < /etc/nix/nix.conf; echo \"$line\" > $out" ];
      requiredSystemFeatures = features;
    };
in
rec {
  # Builds on this machine, or on any x86_64-linux builder.
  hello = whereAmI { name = "hello"; system = "x86_64-linux"; };

  # Needs an aarch64-linux builder: in the lab, b2 emulates one (extra-platforms).
  hello-arm = whereAmI { name = "hello-arm"; system = "aarch64-linux"; };

  # Needs the `kvm` feature: in the lab, b1 has it.
  vm-test = whereAmI { name = "vm-test"; system = "x86_64-linux"; features = [ "kvm" ]; };

  # Depends on hello-arm: "Plan" lists both derivations and where each would build (b2, then here
  # or an x86_64-linux builder); the Builds view shows both while they run.
  both = derivation {
    name = "both";
    system = "x86_64-linux";
    builder = "/bin/sh";
    arm = hello-arm;
    args = [ "-c" "read -r line < $arm; echo \"arm: $line\" > $out" ];
  };

  # Nothing in the lab builds riscv64-linux: Nix Builders says so before you build.
  hello-riscv = whereAmI { name = "hello-riscv"; system = "riscv64-linux"; };
}
