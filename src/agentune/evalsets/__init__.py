"""What evaluation asks, shared by the stages that must keep it out of training: the reference
scenarios (`scenarios`), the pinned BFCL release (`bfcl`) and the leak check (`leak`)."""
