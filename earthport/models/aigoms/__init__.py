"""AI-GOMS (Xiong et al. 2023): a masked autoencoder with 1-D Fourier token mixing (AFNO1D), for the global ocean."""
