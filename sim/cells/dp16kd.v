// ECP5 DP16KD, behavioural, for simulating Yosys netlists (Yosys ships only a black box
// for it, share/ecp5/cells_sim.v and share/lattice/cells_sim_ecp5.v).
//
// Written from Lattice's ECP5 memory usage guide (FPGA-TN-02204, formerly TN1264): a true
// dual-port 18 Kbit block RAM. Each port's DATA_WIDTH is 18 (1,024 words, address
// AD[13:4], AD[1:0] the byte enables of a write: AD[0] bits 8:0, AD[1] bits 17:9) or 9
// (2,048 words, address AD[13:3]), or both are 36 (one write and one read port, see
// WIDE below); a port reads and writes on the rising edge of its
// clock (CLKxMUX "INV": the falling edge) while CE is high and CS[2:0] equals
// CSDECODE; during a write its output keeps its value (WRITEMODE "NORMAL"), shows the
// new word ("WRITETHROUGH") or the old one ("READBEFOREWRITE"); RST clears the output
// (RESETMODE "SYNC": at the clock edge, not gated by CE; "ASYNC": at once); REGMODE
// "OUTREG" adds an output register enabled by OCE. INITVAL_00..3F hold the contents as
// Yosys writes them (share/lattice/brams_map_16kd.v): 16 words of 18 bits per parameter,
// each in a 20-bit field, word 0 lowest; a 9-bit port's word a is bits [9a +: 9] of
// that 18,432-bit array. The 1-, 2- and 4-bit widths (which leave out the ninth bits)
// are not modelled: a netlist using them stops at time zero.
`timescale 1ns / 1ps
module DP16KD (
    input DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0,
    input ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2, ADA1, ADA0,
    input CEA, OCEA, CLKA, WEA, RSTA,
    input CSA2, CSA1, CSA0,
    output DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5, DOA4, DOA3, DOA2, DOA1, DOA0,
    input DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0,
    input ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2, ADB1, ADB0,
    input CEB, OCEB, CLKB, WEB, RSTB,
    input CSB2, CSB1, CSB0,
    output DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5, DOB4, DOB3, DOB2, DOB1, DOB0
);
    parameter DATA_WIDTH_A = 18;
    parameter DATA_WIDTH_B = 18;
    parameter REGMODE_A = "NOREG";
    parameter REGMODE_B = "NOREG";
    parameter RESETMODE = "SYNC";
    parameter ASYNC_RESET_RELEASE = "SYNC";
    parameter CSDECODE_A = "0b000";
    parameter CSDECODE_B = "0b000";
    parameter WRITEMODE_A = "NORMAL";
    parameter WRITEMODE_B = "NORMAL";
    parameter CLKAMUX = "CLKA";
    parameter CLKBMUX = "CLKB";
    parameter GSR = "ENABLED";
    parameter INIT_DATA = "STATIC";
    parameter INITVAL_00 = 320'h0;
    parameter INITVAL_01 = 320'h0;
    parameter INITVAL_02 = 320'h0;
    parameter INITVAL_03 = 320'h0;
    parameter INITVAL_04 = 320'h0;
    parameter INITVAL_05 = 320'h0;
    parameter INITVAL_06 = 320'h0;
    parameter INITVAL_07 = 320'h0;
    parameter INITVAL_08 = 320'h0;
    parameter INITVAL_09 = 320'h0;
    parameter INITVAL_0A = 320'h0;
    parameter INITVAL_0B = 320'h0;
    parameter INITVAL_0C = 320'h0;
    parameter INITVAL_0D = 320'h0;
    parameter INITVAL_0E = 320'h0;
    parameter INITVAL_0F = 320'h0;
    parameter INITVAL_10 = 320'h0;
    parameter INITVAL_11 = 320'h0;
    parameter INITVAL_12 = 320'h0;
    parameter INITVAL_13 = 320'h0;
    parameter INITVAL_14 = 320'h0;
    parameter INITVAL_15 = 320'h0;
    parameter INITVAL_16 = 320'h0;
    parameter INITVAL_17 = 320'h0;
    parameter INITVAL_18 = 320'h0;
    parameter INITVAL_19 = 320'h0;
    parameter INITVAL_1A = 320'h0;
    parameter INITVAL_1B = 320'h0;
    parameter INITVAL_1C = 320'h0;
    parameter INITVAL_1D = 320'h0;
    parameter INITVAL_1E = 320'h0;
    parameter INITVAL_1F = 320'h0;
    parameter INITVAL_20 = 320'h0;
    parameter INITVAL_21 = 320'h0;
    parameter INITVAL_22 = 320'h0;
    parameter INITVAL_23 = 320'h0;
    parameter INITVAL_24 = 320'h0;
    parameter INITVAL_25 = 320'h0;
    parameter INITVAL_26 = 320'h0;
    parameter INITVAL_27 = 320'h0;
    parameter INITVAL_28 = 320'h0;
    parameter INITVAL_29 = 320'h0;
    parameter INITVAL_2A = 320'h0;
    parameter INITVAL_2B = 320'h0;
    parameter INITVAL_2C = 320'h0;
    parameter INITVAL_2D = 320'h0;
    parameter INITVAL_2E = 320'h0;
    parameter INITVAL_2F = 320'h0;
    parameter INITVAL_30 = 320'h0;
    parameter INITVAL_31 = 320'h0;
    parameter INITVAL_32 = 320'h0;
    parameter INITVAL_33 = 320'h0;
    parameter INITVAL_34 = 320'h0;
    parameter INITVAL_35 = 320'h0;
    parameter INITVAL_36 = 320'h0;
    parameter INITVAL_37 = 320'h0;
    parameter INITVAL_38 = 320'h0;
    parameter INITVAL_39 = 320'h0;
    parameter INITVAL_3A = 320'h0;
    parameter INITVAL_3B = 320'h0;
    parameter INITVAL_3C = 320'h0;
    parameter INITVAL_3D = 320'h0;
    parameter INITVAL_3E = 320'h0;
    parameter INITVAL_3F = 320'h0;

    // DATA_WIDTH 36 on both ports: the pseudo dual-port mode (PDPW16KD's), 512 words of
    // 36 bits; port A writes {DIB, DIA} at AD[13:5] with byte enables AD[3:0], port B
    // reads {DOB, DOA} from AD[13:5]. Word r is the 18-bit words 2r (DIA/DOA) and
    // 2r + 1 (DIB/DOB), as Yosys lays out INITVAL (share/lattice/brams_map_16kd.v).
    localparam WIDE = DATA_WIDTH_A == 36 && DATA_WIDTH_B == 36;

    // The 18,432 bits, as 1,024 words of 18.
    reg [17:0] mem [0:1023];

    task load_initval(input [7:0] index, input [319:0] value);
        integer i;
        for (i = 0; i < 16; i = i + 1)
            mem[index * 16 + i] = value[i * 20 +: 18];
    endtask

    function [2:0] csdecode(input [8*5-1:0] text);  // "0bXYZ"
        csdecode = {text[23:16] == "1", text[15:8] == "1", text[7:0] == "1"};
    endfunction

    initial begin
        if (!(WIDE || (DATA_WIDTH_A == 18 || DATA_WIDTH_A == 9)
                      && (DATA_WIDTH_B == 18 || DATA_WIDTH_B == 9))) begin
            $display("DP16KD %m: only DATA_WIDTH 18 and 9, or 36 on both ports, are ",
                     "modelled, not %0d / %0d", DATA_WIDTH_A, DATA_WIDTH_B);
            $finish(1);
        end
        load_initval(8'h00, INITVAL_00);
        load_initval(8'h01, INITVAL_01);
        load_initval(8'h02, INITVAL_02);
        load_initval(8'h03, INITVAL_03);
        load_initval(8'h04, INITVAL_04);
        load_initval(8'h05, INITVAL_05);
        load_initval(8'h06, INITVAL_06);
        load_initval(8'h07, INITVAL_07);
        load_initval(8'h08, INITVAL_08);
        load_initval(8'h09, INITVAL_09);
        load_initval(8'h0A, INITVAL_0A);
        load_initval(8'h0B, INITVAL_0B);
        load_initval(8'h0C, INITVAL_0C);
        load_initval(8'h0D, INITVAL_0D);
        load_initval(8'h0E, INITVAL_0E);
        load_initval(8'h0F, INITVAL_0F);
        load_initval(8'h10, INITVAL_10);
        load_initval(8'h11, INITVAL_11);
        load_initval(8'h12, INITVAL_12);
        load_initval(8'h13, INITVAL_13);
        load_initval(8'h14, INITVAL_14);
        load_initval(8'h15, INITVAL_15);
        load_initval(8'h16, INITVAL_16);
        load_initval(8'h17, INITVAL_17);
        load_initval(8'h18, INITVAL_18);
        load_initval(8'h19, INITVAL_19);
        load_initval(8'h1A, INITVAL_1A);
        load_initval(8'h1B, INITVAL_1B);
        load_initval(8'h1C, INITVAL_1C);
        load_initval(8'h1D, INITVAL_1D);
        load_initval(8'h1E, INITVAL_1E);
        load_initval(8'h1F, INITVAL_1F);
        load_initval(8'h20, INITVAL_20);
        load_initval(8'h21, INITVAL_21);
        load_initval(8'h22, INITVAL_22);
        load_initval(8'h23, INITVAL_23);
        load_initval(8'h24, INITVAL_24);
        load_initval(8'h25, INITVAL_25);
        load_initval(8'h26, INITVAL_26);
        load_initval(8'h27, INITVAL_27);
        load_initval(8'h28, INITVAL_28);
        load_initval(8'h29, INITVAL_29);
        load_initval(8'h2A, INITVAL_2A);
        load_initval(8'h2B, INITVAL_2B);
        load_initval(8'h2C, INITVAL_2C);
        load_initval(8'h2D, INITVAL_2D);
        load_initval(8'h2E, INITVAL_2E);
        load_initval(8'h2F, INITVAL_2F);
        load_initval(8'h30, INITVAL_30);
        load_initval(8'h31, INITVAL_31);
        load_initval(8'h32, INITVAL_32);
        load_initval(8'h33, INITVAL_33);
        load_initval(8'h34, INITVAL_34);
        load_initval(8'h35, INITVAL_35);
        load_initval(8'h36, INITVAL_36);
        load_initval(8'h37, INITVAL_37);
        load_initval(8'h38, INITVAL_38);
        load_initval(8'h39, INITVAL_39);
        load_initval(8'h3A, INITVAL_3A);
        load_initval(8'h3B, INITVAL_3B);
        load_initval(8'h3C, INITVAL_3C);
        load_initval(8'h3D, INITVAL_3D);
        load_initval(8'h3E, INITVAL_3E);
        load_initval(8'h3F, INITVAL_3F);
    end

    // The word a port addresses: in x18 mode the word AD[13:4], in x9 mode the half
    // AD[3] of word AD[13:4].
    function [17:0] read(input integer width, input [13:0] ad);
        read = width == 18 ? mem[ad[13:4]] : {9'd0, ad[3] ? mem[ad[13:4]][17:9] : mem[ad[13:4]][8:0]};
    endfunction
    // What a write of data leaves at the word the port addresses (its output in
    // WRITEMODE "WRITETHROUGH"): the enabled bytes of data, the others as they were.
    function [17:0] through(input integer width, input [13:0] ad, input [17:0] data);
        reg [17:0] word;
        begin
            word = mem[ad[13:4]];
            if (width == 18)
                through = {ad[1] ? data[17:9] : word[17:9], ad[0] ? data[8:0] : word[8:0]};
            else
                through = {9'd0, data[8:0]};
        end
    endfunction

    task write(input integer width, input [13:0] ad, input [17:0] data);
        if (width == 18) begin
            if (ad[0]) mem[ad[13:4]][8:0] <= data[8:0];
            if (ad[1]) mem[ad[13:4]][17:9] <= data[17:9];
        end else if (ad[3])
            mem[ad[13:4]][17:9] <= data[8:0];
        else
            mem[ad[13:4]][8:0] <= data[8:0];
    endtask

    // -- port A ----------------------------------------------------------------------
    wire [17:0] di_a = {DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0};
    wire [13:0] ad_a = {ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2, ADA1, ADA0};
    wire clk_a = CLKA ^ (CLKAMUX == "INV");
    wire cs_a = {CSA2, CSA1, CSA0} == csdecode(CSDECODE_A);
    reg [17:0] latch_a = 18'd0, out_a = 18'd0;
    wire async_reset_a = RESETMODE == "ASYNC" && RSTA;

    always @(posedge clk_a or posedge async_reset_a) begin
        if (async_reset_a) begin
            latch_a <= 18'd0;
        end else begin
            if (!WIDE && CEA && cs_a && WEA)
                write(DATA_WIDTH_A, ad_a, di_a);
            // The output: reset (not gated by CE), else what the write mode says
            // during a write, else the addressed word.
            if (RESETMODE == "SYNC" && RSTA)
                latch_a <= 18'd0;
            else if (CEA && cs_a) begin
                if (!WEA || WRITEMODE_A == "READBEFOREWRITE")
                    // Writes land after the edge (non-blocking): this reads the old word.
                    latch_a <= read(DATA_WIDTH_A, ad_a);
                else if (WRITEMODE_A == "WRITETHROUGH")
                    latch_a <= through(DATA_WIDTH_A, ad_a, di_a);
            end
        end
    end
    // REGMODE "OUTREG": one more register, enabled by OCE.
    always @(posedge clk_a or posedge async_reset_a) begin
        if (async_reset_a || (RESETMODE == "SYNC" && RSTA))
            out_a <= 18'd0;
        else if (OCEA)
            out_a <= latch_a;
    end
    assign {DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5, DOA4, DOA3, DOA2, DOA1, DOA0} = WIDE ? wide_out[17:0] : REGMODE_A == "OUTREG" ? out_a : latch_a;

    // -- port B ----------------------------------------------------------------------
    wire [17:0] di_b = {DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0};
    wire [13:0] ad_b = {ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2, ADB1, ADB0};
    wire clk_b = CLKB ^ (CLKBMUX == "INV");
    wire cs_b = {CSB2, CSB1, CSB0} == csdecode(CSDECODE_B);
    reg [17:0] latch_b = 18'd0, out_b = 18'd0;
    wire async_reset_b = RESETMODE == "ASYNC" && RSTB;

    always @(posedge clk_b or posedge async_reset_b) begin
        if (async_reset_b) begin
            latch_b <= 18'd0;
        end else begin
            if (!WIDE && CEB && cs_b && WEB)
                write(DATA_WIDTH_B, ad_b, di_b);
            // The output: reset (not gated by CE), else what the write mode says
            // during a write, else the addressed word.
            if (RESETMODE == "SYNC" && RSTB)
                latch_b <= 18'd0;
            else if (CEB && cs_b) begin
                if (!WEB || WRITEMODE_B == "READBEFOREWRITE")
                    // Writes land after the edge (non-blocking): this reads the old word.
                    latch_b <= read(DATA_WIDTH_B, ad_b);
                else if (WRITEMODE_B == "WRITETHROUGH")
                    latch_b <= through(DATA_WIDTH_B, ad_b, di_b);
            end
        end
    end
    // REGMODE "OUTREG": one more register, enabled by OCE.
    always @(posedge clk_b or posedge async_reset_b) begin
        if (async_reset_b || (RESETMODE == "SYNC" && RSTB))
            out_b <= 18'd0;
        else if (OCEB)
            out_b <= latch_b;
    end
    assign {DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5, DOB4, DOB3, DOB2, DOB1, DOB0} = WIDE ? wide_out[35:18] : REGMODE_B == "OUTREG" ? out_b : latch_b;

    // -- the 36-bit mode -------------------------------------------------------------
    reg [35:0] wide_latch = 36'd0, wide_reg = 36'd0;
    wire [9:0] wide_w = {ad_a[13:5], 1'b0}, wide_r = {ad_b[13:5], 1'b0};
    wire [35:0] wide_out = REGMODE_B == "OUTREG" ? wide_reg : wide_latch;
    always @(posedge clk_a)
        if (WIDE && CEA && cs_a && WEA) begin
            if (ad_a[0]) mem[wide_w][8:0] <= di_a[8:0];
            if (ad_a[1]) mem[wide_w][17:9] <= di_a[17:9];
            if (ad_a[2]) mem[wide_w + 1][8:0] <= di_b[8:0];
            if (ad_a[3]) mem[wide_w + 1][17:9] <= di_b[17:9];
        end
    always @(posedge clk_b or posedge async_reset_b) begin
        if (async_reset_b || (RESETMODE == "SYNC" && RSTB))
            wide_latch <= 36'd0;
        else if (CEB && cs_b)
            wide_latch <= {mem[wide_r + 1], mem[wide_r]};
        if (async_reset_b || (RESETMODE == "SYNC" && RSTB))
            wide_reg <= 36'd0;
        else if (OCEB)
            wide_reg <= wide_latch;
    end
endmodule
