/// Distributed: the Communicator protocol and its implementations (MPI, in-process),
/// role assignment (learners / rollout workers / colocated). No raw MPI outside this module.
