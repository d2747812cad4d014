# Constraints of npu_board_top on the AMD/Xilinx Alveo U55C (xcu55c-fsvh2892-2L-e).
#
# Pin locations are those of the U55C's published constraints, read from two public
# copies of them: Alex Forencich's U55C XDC (MIT; header "XDC constraints for the
# Xilinx Alveo U55C/Alveo U55N/Varium C1100 board") and DouglasWWolf/u55c_smem
# (xdc/u55c.xdc). Where both list a pin (PCIe refclk,
# PERST#, HBM CATTRIP) they agree; the 100 MHz SYSCLK pins are from the first only.
# Untested on hardware and not yet run through Vivado: see docs/board.md.

# ---------------------------------------------------------------- configuration
set_property CFGBVS GND                                [current_design]
set_property CONFIG_VOLTAGE 1.8                        [current_design]
set_property CONFIG_MODE SPIx4                         [current_design]
set_property BITSTREAM.CONFIG.SPI_BUSWIDTH 4           [current_design]
set_property BITSTREAM.CONFIG.CONFIGRATE 85.0          [current_design]
set_property BITSTREAM.CONFIG.SPI_32BIT_ADDR YES       [current_design]
set_property BITSTREAM.CONFIG.SPI_FALL_EDGE YES        [current_design]
set_property BITSTREAM.GENERAL.COMPRESS TRUE           [current_design]

# ---------------------------------------------------------------- PCIe
# x16 reference clock: MGTREFCLK0 of GT quad 225 (the U55C routes the edge connector's
# 100 MHz REFCLK there for x16 and for lanes 8-15 when bifurcated).
set_property PACKAGE_PIN AR15 [get_ports pcie_refclk_p_i]
set_property PACKAGE_PIN AR14 [get_ports pcie_refclk_n_i]
create_clock -period 10.000 -name pcie_refclk [get_ports pcie_refclk_p_i]

# PERST# from the slot (bank 65, 1.8 V).
set_property -dict {PACKAGE_PIN BF41 IOSTANDARD LVCMOS18 PULLUP true} [get_ports pcie_perst_ni]
set_false_path -from [get_ports pcie_perst_ni]

# The 16 lanes (GT quads 224-227) are placed by the XDMA IP itself from its
# pcie_blk_locn / select_quad settings (build.tcl); no PACKAGE_PIN here.

# ---------------------------------------------------------------- NPU clock
# clk_i of the NPU is the bridge's axi_aclk: 250 MHz (4.000 ns), generated inside the
# XDMA IP from the PCIe reference clock and created by the IP's own constraints
# (build.tcl checks its period after synthesis).

# Reset synchroniser flops (prim_rst_sync): keep them together, no SRL.
set_property ASYNC_REG TRUE [get_cells -hierarchical -filter {NAME =~ */u_rst_sync/sync_q_reg*}]

# ---------------------------------------------------------------- HBM
# 100 MHz board clock for the HBM controller's reference (SYSCLK, bank 64).
set_property -dict {PACKAGE_PIN BK10 IOSTANDARD LVDS} [get_ports hbm_refclk_p_i]
set_property -dict {PACKAGE_PIN BL10 IOSTANDARD LVDS} [get_ports hbm_refclk_n_i]
create_clock -period 10.000 -name hbm_refclk [get_ports hbm_refclk_p_i]

# HBM catastrophic-temperature output: driven low by the HBM IP; high cuts the card's power.
set_property -dict {PACKAGE_PIN BE45 IOSTANDARD LVCMOS18 PULLDOWN true} [get_ports hbm_cattrip_o]
set_false_path -to [get_ports hbm_cattrip_o]

# The reference clocks and the NPU clock are unrelated; the crossings are inside the
# vendor IP (XDMA, SmartConnect), which carry their own constraints.
set_clock_groups -asynchronous -group [get_clocks pcie_refclk -include_generated_clocks] \
                               -group [get_clocks hbm_refclk -include_generated_clocks]
